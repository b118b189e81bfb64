"""``regionproxy probe`` against a local HTTPS endpoint with a self-signed
certificate made here: phases, the table, the JSON and its use as a
latency profile. Loopback only; no timing is asserted."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer

import pytest

from regionproxy._cli.latency_probe import endpoints_for, parse_key, run
from regionproxy.bench import profiles
from regionproxy.bench.canned import CannedHandler
from regionproxy.errors import ConfigError

REGIONS = ["eu-west-3", "us-east-1"]


class _Handler(CannedHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"healthy: dynamodb.local"
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def _certificate(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def https_endpoint(tmp_path_factory):
    """A DynamoDB-shaped HTTPS endpoint on loopback; yields (url, cert file)."""
    cert_file, key_file = _certificate(tmp_path_factory.mktemp("tls"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(cert_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _ordered(summary):
    return summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"] <= summary["p99.9_ms"] <= summary["max_ms"]


def test_probe_command_times_every_phase_per_region_and_writes_json(https_endpoint, tmp_path):
    url, cert = https_endpoint
    out = tmp_path / "probe.json"
    command = [sys.executable, "-m", "regionproxy", "probe", "--region", REGIONS[0], "--region", REGIONS[1]]
    command += ["--endpoint", url, "--ca-file", cert, "--table", "Bench", "--key", "pk=bench", "--key", "sk=item"]
    command += ["--count", "5", "--interval", "0", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["kind"] == "regionproxy-probe" and list(data["regions"]) == REGIONS
    for region in REGIONS:
        phases = data["regions"][region]["phases"]
        assert set(phases) == {"dns", "connect", "tls", "request", "getitem"}
        for phase, summary in phases.items():
            assert summary["count"] == 5 and summary["errors"] == {}, (region, phase)
            assert _ordered(summary)
        assert data["regions"][region]["http_statuses"] == {"200": 5}
        rows = [line.split() for line in done.stdout.splitlines() if line.startswith(region)]
        assert [row[1] for row in rows] == ["dns", "connect", "tls", "request", "getitem"]
    assert f"wrote {out}" in done.stdout


def test_an_untrusted_certificate_is_reported_as_a_tls_error_not_a_crash(https_endpoint):
    url, _ = https_endpoint
    result = run([REGIONS[0]], endpoints=[url], count=2, interval=0)
    tls = result["regions"][REGIONS[0]]["phases"]["tls"]
    assert tls["count"] == 0 and tls["errors"] == {"SSLCertVerificationError": 2}
    assert result["regions"][REGIONS[0]]["phases"]["request"]["count"] == 0


def test_insecure_skips_certificate_checks(https_endpoint):
    url, _ = https_endpoint
    result = run([REGIONS[0]], endpoints=[url], count=2, interval=0, insecure=True)
    assert result["regions"][REGIONS[0]]["phases"]["request"]["count"] == 2


def test_plain_http_endpoints_have_no_tls_phase(https_endpoint):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        result = run([REGIONS[0]], endpoints=[f"http://127.0.0.1:{server.server_address[1]}"], count=2, interval=0)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert set(result["regions"][REGIONS[0]]["phases"]) == {"dns", "connect", "request"}


def test_probe_json_is_a_latency_profile_for_bench(https_endpoint, tmp_path):
    url, cert = https_endpoint
    result = run(REGIONS, endpoints=[url], count=3, interval=0, ca_file=cert, table="Bench", key=["pk=bench", "sk=item"])
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(result))
    profile = profiles.load(str(path))
    assert set(profile.regions) == set(REGIONS)
    for region in REGIONS:
        assert profile.regions[region].rtt_ms == result["regions"][region]["phases"]["getitem"]["p50_ms"]
        assert profile.regions[region].how.startswith("probe: getitem")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param([], {"eu-west-3": "https://dynamodb.eu-west-3.amazonaws.com"}, id="default"),
        pytest.param(["https://127.0.0.1:1"], {"eu-west-3": "https://127.0.0.1:1"}, id="every-region"),
        pytest.param(["eu-west-3=http://127.0.0.1:2"], {"eu-west-3": "http://127.0.0.1:2"}, id="one-region"),
    ],
)
def test_endpoints_default_to_aws_and_can_be_overridden(overrides, expected):
    assert endpoints_for(["eu-west-3"], overrides) == expected


@pytest.mark.parametrize(
    "overrides",
    [pytest.param(["ftp://x"], id="scheme"), pytest.param(["us-east-1=https://127.0.0.1:1"], id="unknown-region")],
)
def test_bad_endpoints_are_config_errors(overrides):
    with pytest.raises(ConfigError):
        endpoints_for(["eu-west-3"], overrides)


def test_keys_are_name_value_strings_or_one_wire_format_json():
    assert parse_key(["pk=a", "sk=b=c"]) == {"pk": {"S": "a"}, "sk": {"S": "b=c"}}
    assert parse_key(['{"pk": {"N": "1"}}']) == {"pk": {"N": "1"}}
    with pytest.raises(ConfigError):
        parse_key(["pk"])
    with pytest.raises(ConfigError):
        parse_key(['{"pk": "a"}'])


def test_table_without_key_is_a_config_error():
    with pytest.raises(ConfigError, match="--table and --key"):
        run(["eu-west-3"], endpoints=["https://127.0.0.1:1"], table="Bench")
