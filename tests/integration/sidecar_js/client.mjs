// The AWS SDK for JavaScript v3 against regionproxy serve, driven by
// tests/integration/test_sidecar_clients.py: it runs one phase, prints one
// JSON line with what it saw, and waits for a line on stdin before the next
// (so the test can fail a region between phases). Nothing here knows about
// regionproxy: it is an ordinary app with an endpoint set.
import readline from "node:readline";
import {
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  BatchWriteItemCommand,
  TransactWriteItemsCommand,
  paginateQuery,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";

const [endpoint, keyId, secret, table] = process.argv.slice(2);
const client = new DynamoDBClient({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: keyId, secretAccessKey: secret },
});
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function readBack(name, read, consistent = false) {
  for (let i = 0; i < 5; i++) {
    await read(async () => {
      const got = await client.send(new GetItemCommand({
        TableName: table, Key: { pk: { S: `js-${name}` }, sk: { S: String(i) } }, ConsistentRead: consistent,
      }));
      if (!got.Item || got.Item.v.N !== String(i) || got.Item.b.B[2] !== 255) throw new Error(`item ${i} wrong: ${JSON.stringify(got.Item)}`);
    });
  }
  await read(async () => {
    let count = 0;
    const pages = paginateQuery({ client, pageSize: 2 }, {
      TableName: table, KeyConditionExpression: "pk = :p", ExpressionAttributeValues: { ":p": { S: `js-${name}` } },
    });
    for await (const page of pages) count += page.Items.length;
    if (count !== 5) throw new Error(`query paged ${count} items, expected 5`);
  });
}

// A phase reads what the first phase wrote (strongly consistent: these
// reads reach the local region, so they meet its failure first), and what
// the phase before wrote; writes; then reads its own writes back.
async function phase(name, previous, first) {
  const seen = { phase: name, reads: 0, failedReads: 0, writes: 0, failedWrites: 0, errors: [] };
  const read = async (fn) => {
    try { await fn(); seen.reads++; } catch (e) { seen.failedReads++; seen.errors.push(`${e.name}: ${e.message}`); }
  };
  const write = async (fn) => {
    try { await fn(); seen.writes++; } catch (e) { seen.failedWrites++; seen.errors.push(`${e.name}: ${e.message}`); }
  };
  if (previous === undefined) {
    await read(() => waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: table }));
  } else {
    await readBack(first, read, true);
    await readBack(previous, read);
  }
  // Writes: one counter bumped per phase (ADD: applied once or the test sees it),
  // unconditional puts with keys of this phase, a batch and a transaction.
  await write(() => client.send(new UpdateItemCommand({
    TableName: table, Key: { pk: { S: "js-counter" }, sk: { S: "0" } },
    UpdateExpression: "ADD n :one", ExpressionAttributeValues: { ":one": { N: "1" } },
  })));
  for (let i = 0; i < 5; i++) {
    await write(() => client.send(new PutItemCommand({
      TableName: table, Item: { pk: { S: `js-${name}` }, sk: { S: String(i) }, v: { N: String(i) }, b: { B: new Uint8Array([0, i, 255]) } },
    })));
  }
  await write(() => client.send(new BatchWriteItemCommand({
    RequestItems: { [table]: [0, 1, 2].map((i) => ({ PutRequest: { Item: { pk: { S: `js-${name}-batch` }, sk: { S: String(i) } } } })) },
  })));
  await write(() => client.send(new TransactWriteItemsCommand({
    TransactItems: [
      { Put: { TableName: table, Item: { pk: { S: `js-${name}-tx` }, sk: { S: "a" } } } },
      { Put: { TableName: table, Item: { pk: { S: `js-${name}-tx` }, sk: { S: "b" } } } },
    ],
  })));
  await readBack(name, read);
  console.log(JSON.stringify(seen));
}

const phases = process.argv.slice(6);
for (const [index, name] of phases.entries()) {
  await phase(name, phases[index - 1], phases[0]);
  const next = await lines.next();
  if (next.done) break;
}
process.exit(0);
