"""boto3's shapes (client, resource, Table) over the session."""
