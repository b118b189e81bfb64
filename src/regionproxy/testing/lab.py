"""A local stand-in for DynamoDB Global Tables, for failover drills.

:class:`LocalRegions` runs one moto server per region on loopback, a
:class:`~regionproxy.testing.fault_proxy.FaultProxy` in front of each, and a
stream-based :class:`~regionproxy.testing.replication.Replicator` between
them. Clients use :attr:`LocalRegions.endpoints` (the proxies), so every
injected fault is what a real client would meet.

In-process servers (the default) share moto's module-global backends: the
lab keeps regions apart by region name, and empties moto's state when it
starts, so run one in-process lab at a time in a process.

With ``tls=True`` the proxies are https endpoints with a certificate of the
lab's own CA (:mod:`regionproxy.testing.tls`): the lab's clients and the
sessions it makes trust that CA; other clients are pointed at
:attr:`LocalRegions.ca_bundle` (``AWS_CA_BUNDLE``, or botocore's
``ca_bundle`` setting).

Each region also has a host name of its own (:attr:`LocalRegions.named_endpoints`,
resolved in this process by :mod:`regionproxy.testing.resolver`; with
``hostnames=True`` they are :attr:`LocalRegions.endpoints`): the
``unresolvable`` fault makes a region's name stop resolving, as an empty
DNS record does, while its server and replication carry on.

Starting a lab costs about a second (servers, clients, the replicator);
:meth:`LocalRegions.reset` returns a started lab to its just-started state
in milliseconds, which is how the pytest plugin shares one lab between tests.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from regionproxy.errors import ConfigError
from regionproxy.testing import resolver
from regionproxy.testing.fault_modes import RESOLVER_MODES, Fault
from regionproxy.testing.fault_proxy import FaultProxy, ProxiedConnection, ProxiedRequest
from regionproxy.testing.replication import Replicator
from regionproxy.testing.servers import MotoServer
from regionproxy.testing.tls import LabCertificates

if TYPE_CHECKING:
    from regionproxy._session.session import RegionSession

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Cutting a region off stops replication to and from it, as in a real outage.
_CUT = frozenset({"refuse", "reset", "blackhole"})
# The single-item writes a write conflict answers by default (lab.write_conflict).
WRITES = ("PutItem", "UpdateItem", "DeleteItem")
_NEW_IMAGES = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")  # stream views the replicator can ship


def _replica_spec(description: dict[str, Any]) -> dict[str, Any]:
    """``CreateTable`` arguments for a replica of the table ``description``
    describes: its keys, indexes and billing, streams on."""
    spec: dict[str, Any] = {
        "TableName": description["TableName"],
        "KeySchema": description["KeySchema"],
        "AttributeDefinitions": description["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = [
            {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
            for index in description.get(kind, [])
        ]
        if indexes:
            spec[kind] = indexes
    return spec


class LocalRegions:
    """One moto server per region on loopback, with faults and replication.

    :param regions: region names; the first is the local one by convention.
    :param mode: ``thread`` (in-process servers, fast to start) or
        ``process`` (``moto_server`` subprocesses, for benchmarks).
    :param lag: seconds before a change reaches the other regions
        (0: as fast as the replicator can; 1.0 is realistic).
    :param replicate: run the replicator at all.
    :param seed: seeds the randomness of jitter and error rates.
    :param host: loopback address for servers and proxies.
    :param tls: serve each region's endpoint over https, with a certificate
        of the lab's own CA (:attr:`ca_bundle`); moto behind the proxies
        still speaks plain HTTP, and :attr:`direct_endpoints` reach it so.
    :param hostnames: give :attr:`endpoints` by the lab's host names
        (:attr:`named_endpoints`) rather than by address; they resolve in
        this process only.

    Needs the ``testing`` extra. A context manager (``start()`` and
    ``stop()`` otherwise); in pytest, the ``local_regions`` fixture yields a
    started one (docs/how-to/failover-drills.md).

    Example::

        from regionproxy.testing import LocalRegions

        with LocalRegions(["eu-west-3", "us-east-1"]) as lab:
            lab.create_table(TableName="Blog", KeySchema=[...], AttributeDefinitions=[...])
            session = lab.session()              # a RegionSession wired to the lab
            lab.fault("eu-west-3", "blackhole")  # refuse | reset | blackhole | latency | error | ...
            lab.heal("eu-west-3")
    """

    def __init__(
        self,
        regions: Iterable[str],
        *,
        mode: str = "thread",
        lag: float = 0.0,
        replicate: bool = True,
        seed: int | None = None,
        host: str = "127.0.0.1",
        poll_interval: float = 0.02,
        tls: bool = False,
        hostnames: bool = False,
    ) -> None:
        self.regions = list(regions)
        if not self.regions or len(set(self.regions)) != len(self.regions):
            raise ConfigError(f"regions must be distinct and not empty, got {self.regions}", setting="regions")
        if lag < 0:
            raise ConfigError(f"lag must be >= 0, got {lag}", setting="lag")
        self._mode = mode
        self._lag = lag
        self._replicate = replicate
        self._rng = random.Random(seed)
        self._host = host
        self._poll_interval = poll_interval
        self._tls = tls
        self._hostnames = hostnames
        lab_id = uuid.uuid4().hex[:10]
        self._names = {region: f"{region}.{lab_id}.{resolver.SUFFIX}" for region in self.regions}
        self._unresolvable: set[str] = set()
        self._resolver_file: str | None = None
        self._certificates: LabCertificates | None = None
        self._servers: dict[str, MotoServer] = {}
        self._proxies: dict[str, FaultProxy] = {}
        self._tables: list[str] = []
        self._sessions: list[RegionSession] = []
        self._boto3: Any = None
        self._core: Any = None  # the lab boto3 session's botocore session
        self._loader: Any = None
        self._boto3_lock = threading.Lock()
        self._replication_clients: tuple[dict[str, Any], dict[str, Any]] | None = None
        self.replicator: Replicator | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> LocalRegions:
        try:
            if self._tls:
                self._certificates = LabCertificates(self._host)
                if self._core is not None:  # started before: trust the new CA
                    self._trust(self._core)
            for region in self.regions:
                self._servers[region] = MotoServer(self._mode, self._host).start()
            self._proxies = self._new_proxies()
            for region, name in self._names.items():
                resolver.register(name, self._host, lambda region=region: region in self._unresolvable)
            if self._mode == "thread":
                # In-process backends outlive a lab: start from nothing.
                self._reset_moto()
            self._start_replicator()
        except BaseException:
            self.stop()
            raise
        return self

    def reset(self) -> LocalRegions:
        """Return a started lab to the state :meth:`start` left it in, without
        restarting its servers: sessions from :meth:`session` closed, every
        table dropped (moto emptied), new fault proxies on new ports (no
        faults, no requests recorded), a new replicator with the lab's
        ``lag``.

        Test fixtures share one lab and reset it between tests: a reset
        takes milliseconds where a start takes about a second. The new ports
        keep tests apart as separate labs would: a client or session a test
        leaked (a health prober, say) meets a closed port, not the next
        test's regions.
        """
        if not self._servers:
            raise RuntimeError("reset needs a started lab")
        self._close_sessions()
        self._stop_replicator()
        old, self._proxies = self._proxies, self._new_proxies()
        _stop_all(old.values())
        self._reset_moto()
        self._tables.clear()
        self._unresolvable.clear()
        self._write_resolver_file()
        self._resolver_file = None
        self._start_replicator()
        return self

    def stop(self) -> None:
        self._close_sessions()
        self._stop_replicator()
        _stop_all(self._proxies.values())
        if self._mode == "thread" and self._servers:
            # Leave in-process moto as empty as start() found it, so a lab
            # that comes later in this process finds no tables of this one.
            with contextlib.suppress(OSError):
                self._reset_moto()
        for server in self._servers.values():
            server.stop()
        self._proxies = {}
        self._servers.clear()
        self._unresolvable.clear()
        for name in self._names.values():
            resolver.unregister(name)
        self._replication_clients = None
        if self._certificates is not None:
            self._certificates.remove()
            self._certificates = None

    def _new_proxies(self) -> dict[str, FaultProxy]:
        tls = self._certificates.server_context() if self._certificates is not None else None
        return {
            region: FaultProxy(server.address, host=self._host, rng=random.Random(self._rng.random()), tls=tls).start()
            for region, server in self._servers.items()
        }

    def _reset_moto(self) -> None:
        # In-process servers share one set of backends: one reset empties all.
        servers = list(self._servers.values())
        for server in servers[:1] if self._mode == "thread" else servers:
            server.reset()

    def _start_replicator(self) -> None:
        if not self._replicate:
            return
        if self._replication_clients is None:
            # Built once per start: a reset reuses them (clients are cheap to
            # keep, slow to build, and moto's reset does not touch them).
            self._replication_clients = (
                {region: self.client(region, direct=True) for region in self.regions},
                {region: self.client(region, direct=True, service="dynamodbstreams") for region in self.regions},
            )
        clients, streams = self._replication_clients
        self.replicator = Replicator(clients, streams, self._is_cut, lag=self._lag, poll_interval=self._poll_interval)
        self.replicator.start()

    def _stop_replicator(self) -> None:
        if self.replicator is not None:
            self.replicator.stop()
            self.replicator = None

    def _close_sessions(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> LocalRegions:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what clients use ------------------------------------------------------

    @property
    def endpoints(self) -> dict[str, str]:
        """Each region's endpoint as clients should use it: through its proxy
        (by host name with ``hostnames=True``)."""
        if self._hostnames:
            return self.named_endpoints
        return {region: proxy.endpoint for region, proxy in self._proxies.items()}

    @property
    def named_endpoints(self) -> dict[str, str]:
        """Each region's proxy by the lab's host name for it, which resolves
        in this process only (and fails under the ``unresolvable`` fault)."""
        named = {}
        for region, proxy in self._proxies.items():
            scheme, _, rest = proxy.endpoint.partition("://")
            port = rest.rstrip("/").rpartition(":")[2]
            named[region] = f"{scheme}://{self._names[region]}:{port}"
        return named

    @property
    def ca_bundle(self) -> str | None:
        """The lab CA's certificate file (PEM) a client must trust to reach
        :attr:`endpoints` of a ``tls=True`` lab; None without TLS. Valid
        until the lab stops."""
        return self._certificates.ca_bundle if self._certificates is not None else None

    @property
    def direct_endpoints(self) -> dict[str, str]:
        """Each region's moto server itself, past the fault proxy."""
        return {region: server.endpoint for region, server in self._servers.items()}

    def client(self, region: str, *, direct: bool = False, service: str = "dynamodb", config: Any = None) -> Any:
        """A new boto3 client for ``region``: through its proxy, or ``direct``.

        Clients come from one boto3 session per lab, which parses the service
        model once (a client from a fresh boto3 session costs ~0.2 s, and
        much more on a loaded machine); the lock keeps that session to one
        thread at a time, as boto3 asks.
        """
        from botocore.config import Config

        endpoint = (self.direct_endpoints if direct else self.endpoints)[self._known(region)]
        config = config or Config(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1})
        with self._boto3_lock:
            return self._lab_boto3().client(service, region_name=region, endpoint_url=endpoint, config=config)

    def _lab_boto3(self) -> Any:
        import boto3
        import botocore.session

        if self._boto3 is None:
            core = self._core = botocore.session.Session()
            self._trust(core)
            self._boto3 = boto3.session.Session(botocore_session=core, **CREDENTIALS)
            self._loader = core.get_component("data_loader")
        return self._boto3

    def _boto3_session(self) -> Any:
        """A boto3 session of its own for a :class:`RegionSession`, sharing
        only the lab's model loader: its clients cost milliseconds, not a
        parse of the service model each (boto3 sessions are not thread-safe,
        so sessions are not shared; the loader only caches what it parsed)."""
        import boto3
        import botocore.session

        with self._boto3_lock:
            self._lab_boto3()
            loader = self._loader
            core = botocore.session.Session()
            core.register_component("data_loader", loader)
            self._trust(core)
            paths = list(loader.search_paths)
            session = boto3.session.Session(botocore_session=core, **CREDENTIALS)
            # Every boto3 session appends boto3's own data path to its loader:
            # keep one copy, not one per session.
            if len(loader.search_paths) > len(paths) and loader.search_paths[-1] in paths:
                loader.search_paths.pop()
            return session

    def _trust(self, core: Any) -> None:
        # What AWS_CA_BUNDLE sets: clients made with verify=None use it.
        if self.ca_bundle is not None:
            core.set_config_variable("ca_bundle", self.ca_bundle)

    def session(self, **kwargs: Any) -> RegionSession:
        """A :class:`~regionproxy.RegionSession` wired to this lab's proxies.

        Keyword arguments go to the session; ``regions`` defaults to the
        lab's, in its order. The lab closes the session when it stops. Its
        boto3 session trusts the lab's CA (``tls=True``); one passed as
        ``boto3_session`` must be told to (:attr:`ca_bundle`).
        """
        from regionproxy._session.session import RegionSession

        kwargs.setdefault("regions", self.regions)
        kwargs.setdefault("endpoints", self.endpoints)
        if "boto3_session" not in kwargs:
            kwargs["boto3_session"] = self._boto3_session()
        session = RegionSession(**kwargs)
        self._sessions.append(session)
        return session

    def create_table(self, **kwargs: Any) -> dict[str, Any]:
        """Create a table in every region, streams on, as a Global Table."""
        kwargs.setdefault("StreamSpecification", {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        if "BillingMode" not in kwargs and "ProvisionedThroughput" not in kwargs:
            kwargs["BillingMode"] = "PAY_PER_REQUEST"
        descriptions = [self.client(region, direct=True).create_table(**kwargs) for region in self.regions]
        self._tables.append(kwargs["TableName"])
        if self.replicator is not None:
            self.replicator.add_table(kwargs["TableName"])
        return descriptions[0]["TableDescription"]

    def adopt_tables(self) -> list[str]:
        """Make every table created through the lab's endpoints (by a user,
        in one region or more) a Global Table as :meth:`create_table` does:
        create it in the regions that lack it with the same keys and
        indexes, turn its streams on, copy the items it already holds, and
        replicate it from now on. Returns the tables adopted. A table whose
        stream carries no new images (``KEYS_ONLY``, ``OLD_IMAGE``) is left
        unreplicated: its changes cannot be shipped. The
        ``regionproxy lab`` command calls it every half second."""
        if self.replicator is None:
            return []
        clients = {region: self.client(region, direct=True) for region in self.regions}
        found: dict[str, list[str]] = {}  # table -> the regions that have it
        for region, client in clients.items():
            for table in client.get_paginator("list_tables").paginate().build_full_result().get("TableNames", []):
                found.setdefault(table, []).append(region)
        adopted = []
        for table, holders in sorted(found.items()):
            if table in self._tables:
                continue
            streams = {region: clients[region].describe_table(TableName=table)["Table"].get("StreamSpecification", {}) for region in holders}
            if any(stream.get("StreamEnabled") and stream.get("StreamViewType") not in _NEW_IMAGES for stream in streams.values()):
                # A stream without new images would replicate every write as a
                # delete, and moto cannot change a stream's view: left alone.
                self._tables.append(table)
                continue
            description = clients[holders[0]].describe_table(TableName=table)["Table"]
            spec = _replica_spec(description)
            for region in self.regions:
                if region not in holders:
                    clients[region].create_table(**spec)
                elif not streams[region].get("StreamEnabled"):
                    clients[region].update_table(TableName=table, StreamSpecification=spec["StreamSpecification"])
            for holder in holders:  # items written before the stream was on
                for page in clients[holder].get_paginator("scan").paginate(TableName=table):
                    for item in page.get("Items", []):
                        for region in self.regions:
                            if region not in holders:
                                clients[region].put_item(TableName=table, Item=item)
            self._tables.append(table)
            self.replicator.add_table(table)
            adopted.append(table)
        return adopted

    # -- faults and replication ---------------------------------------------

    def fault(self, region: str, mode: str, **params: Any) -> None:
        """Inject a fault: ``refuse``, ``reset``, ``blackhole``, ``latency``
        (``delay``, ``jitter``), ``error`` (``status``, ``code``, ``rate``),
        ``late`` and ``flap`` (``delay``), ``drop``, ``corrupt`` (``rate``) or
        ``handshake`` (``tls=True`` labs), or ``unresolvable`` (the region's
        host name stops resolving: :attr:`named_endpoints`); see
        :mod:`regionproxy.testing.fault_modes`."""
        fault = Fault(mode, **params)
        if mode in RESOLVER_MODES:
            self._unresolvable.add(self._known(region))
            self._write_resolver_file()
            return
        self._proxies[self._known(region)].set_fault(fault)

    def strongly_consistent(self, table: str, *, witness: str | None = None) -> None:
        """Describe ``table`` as a multi-region strong consistency (MRSC)
        Global Table: every region's ``DescribeTable`` answers with
        ``MultiRegionConsistency: STRONG``, its replicas (the other lab
        regions but ``witness``) and ``witness`` as its witness region.
        moto knows nothing of MRSC: this changes what the table says, not
        how it behaves (the replicator still replicates asynchronously; see
        the lab's page, docs/how-to/failover-drills.md, for what the stand-in covers)."""
        fields: dict[str, Any] = {"MultiRegionConsistency": "STRONG"}
        if witness is not None:
            fields["GlobalTableWitnesses"] = [{"RegionName": witness, "WitnessStatus": "ACTIVE"}]
        for region, proxy in self._proxies.items():
            replicas = [r for r in self.regions if r not in (region, witness)]
            proxy.describe_as(table, {**fields, "Replicas": [{"RegionName": r, "ReplicaStatus": "ACTIVE"} for r in replicas]})

    def write_conflict(self, region: str, *, operations: tuple[str, ...] = WRITES, rate: float = 1.0) -> None:
        """Answer ``operations`` in ``region`` with ``ReplicatedWriteConflictException``
        (HTTP 400, not forwarded: the write is not applied), as an MRSC table
        answers a write that met a concurrent write of the same item from
        another region; :meth:`heal` ends it."""
        self.fault(region, "error", status=400, code="ReplicatedWriteConflictException", operations=operations, rate=rate)

    def heal(self, region: str | None = None, mode: str | None = None) -> None:
        """Remove faults from ``region`` (every region if None); ``mode``
        ``latency`` removes only the latency, an outage mode only the outage."""
        for name in [self._known(region)] if region else self.regions:
            if mode is None or mode in RESOLVER_MODES:
                self._unresolvable.discard(name)
            if mode not in RESOLVER_MODES:
                self._proxies[name].heal(mode)
        self._write_resolver_file()

    def resolver_environment(self, path: str) -> dict[str, str]:
        """Variables for a Python subprocess that should resolve the lab's
        host names (it calls :func:`regionproxy.testing.resolver.install_from_env`
        at import): the names, and ``path``, a file the lab keeps listing the
        names that do not resolve now (``unresolvable``)."""
        self._resolver_file = str(path)
        self._write_resolver_file()
        hosts = ",".join(f"{name}={self._host}" for name in self._names.values())
        return {resolver.HOSTS_VARIABLE: hosts, resolver.UNRESOLVABLE_VARIABLE: self._resolver_file}

    def _write_resolver_file(self) -> None:
        if self._resolver_file is None:
            return
        listed = "".join(self._names[region] + "\n" for region in sorted(self._unresolvable))
        temporary = self._resolver_file + ".tmp"
        with open(temporary, "w", encoding="utf-8") as out:
            out.write(listed)
        os.replace(temporary, self._resolver_file)  # readers see the old list or the new, whole

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Block until every change so far reached every region not cut off."""
        if self.replicator is None:
            raise RuntimeError("this lab was started with replicate=False")
        self.replicator.wait_replicated(timeout)

    def requests(self, region: str) -> list[ProxiedRequest]:
        """What the region's proxy forwarded or answered since the lab started
        or was last reset, oldest first."""
        return self._proxies[self._known(region)].requests()

    def connections(self, region: str) -> list[ProxiedConnection]:
        """The connections the region's proxy accepted since the lab started
        or was last reset, in order (a request's ``connection`` is the
        number of one of them)."""
        return self._proxies[self._known(region)].connections()

    def outage(self, region: str) -> str | None:
        """The outage mode injected in ``region`` now, if any."""
        outage = self._proxies[self._known(region)].outage
        if outage is None and region in self._unresolvable:
            return "unresolvable"
        return outage

    def _is_cut(self, region: str) -> bool:
        return self._proxies[region].outage in _CUT

    def _known(self, region: str) -> str:
        if region not in self.regions:
            raise ConfigError(f"unknown region {region!r}; this lab has {self.regions}", setting="region")
        return region


def _stop_all(proxies: Iterable[FaultProxy]) -> None:
    """Stop proxies side by side: each waits out its acceptor's poll."""
    stoppers = [threading.Thread(target=proxy.stop, name="faultproxy-stop") for proxy in proxies]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join(timeout=10)


@contextlib.contextmanager
def serving(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a WSGI app with werkzeug's threaded server on a free loopback
    port for the duration of the block; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"wsgi:{server.server_port}", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
