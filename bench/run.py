"""Benchmark this registry side by side with distribution and nginx.

    python bench/run.py [--quick] [--size MIB] [--repeat N] [--json FILE]
                        [--only PART ...]

Starts, on 127.0.0.1 and on the same data: this registry under gunicorn with
the shipped gunicorn.conf.py, Debian's docker-registry (distribution) with a
filesystem config written here, and nginx serving the registry's own blob file.
Each figure is measured several times, interleaving the servers, and the
medians are printed as one table with the ratio the target is set on.
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path

from clients import (
    BenchError,
    Client,
    curl_download,
    run_wrk,
    small_image,
    write_data,
)
from dockerpush import measure_docker
from servers import (
    MemoryWatch,
    Missing,
    cpu_seconds,
    find_binary,
    start_distribution,
    start_nginx,
    start_registry,
)

MIB = 1024 * 1024
SERVERS = ("registry", "distribution", "nginx")
FULL = {"size": 256, "memory_size": 2048, "repeat": 5, "duration": 5}
QUICK = {"size": 64, "memory_size": 256, "repeat": 3, "duration": 2}
LISTING_PAGE = 1000
PARTS = ("pushes", "downloads", "requests", "memory", "docker")
LINK_PATTERN = re.compile(r"\s*<([^>]+)>")
MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class Figure:
    """One row of the table and the target its ratio is held to."""

    key: str
    label: str
    unit: str
    baseline: str | None  # the server the ratio divides by; None: an absolute target
    target: float | None  # None: shown for understanding, no target
    higher_is_better: bool = True


def figures(settings):
    """The rows of the table, labelled with this run's sizes."""
    size, big, chunk = settings.size, settings.memory_size, settings.chunk
    return [
        Figure("blob_get_1", f"blob GET {size} MiB, 1 client", "MiB/s", "nginx", 0.9),
        Figure("blob_get_4", f"blob GET {size} MiB, 4 clients", "MiB/s", "nginx", 0.9),
        Figure("push_monolithic", f"monolithic push {size} MiB", "MiB/s",
               "distribution", 4.0),
        Figure("push_chunked", f"chunked push {size} MiB, {chunk} MiB PATCHes",
               "MiB/s", "distribution", 4.0),
        Figure("push_streamed", f"streamed PATCH push {size} MiB", "MiB/s",
               "distribution", 4.0),
        Figure("push_cpu", f"server CPU per {size} MiB push, all three kinds", "s",
               "distribution", None, False),
        Figure("manifest_get", f"manifest GET, {settings.connections} connections",
               "req/s", "distribution", 2.0),
        Figure("manifest_p99", "manifest GET p99", "ms", "distribution", 1.0, False),
        Figure("manifest_get_token", "manifest GET with pull token", "req/s",
               "distribution", 1.5),
        Figure("tag_list", f"tag list, {settings.tags} tags", "lists/s",
               "distribution", 2.0),
        Figure("catalog", f"catalog, {settings.repos} repositories", "lists/s",
               "distribution", 2.0),
        Figure("docker_push", f"docker push, 3-layer {settings.image} MiB image", "s",
               "distribution", 1.0, False),
        Figure("docker_pull", f"docker pull, 3-layer {settings.image} MiB image", "s",
               "distribution", 1.0, False),
        Figure("memory_small", f"worker peak RSS, {size} MiB push+pull", "MiB",
               None, 120.0, False),
        Figure("memory_big", f"worker peak RSS, {big} MiB push+pull", "MiB",
               None, 120.0, False),
    ]  # fmt: skip


class Results:
    """Samples per figure and server, and the parts that could not run."""

    def __init__(self):
        self.samples = {}
        self.missing = {}

    def add(self, key, server, value):
        self.samples.setdefault(key, {}).setdefault(server, []).append(value)

    def median(self, key, server):
        values = self.samples.get(key, {}).get(server)
        return statistics.median(values) if values else None

    def rows(self, settings):
        """The table as dicts: medians, ratio, and whether the target is met.

        With ``--only``, the figures of the parts left out are left out.
        """
        every = settings.only == set(PARTS)
        chosen = [f for f in figures(settings) if every or f.key in self.samples]
        return [self.row(figure) for figure in chosen]

    def row(self, figure):
        values = {server: self.median(figure.key, server) for server in SERVERS}
        registry = values["registry"]
        base = values[figure.baseline] if figure.baseline else None
        ratio = registry / base if registry is not None and base else None
        measured = ratio if figure.baseline else registry
        met = None
        if measured is not None and figure.target is not None:
            met = measured >= figure.target
            if not figure.higher_is_better:
                met = measured <= figure.target
        return {
            "key": figure.key,
            "figure": figure.label,
            "unit": figure.unit,
            **values,
            "ratio": ratio,
            "compared_with": figure.baseline,
            "target": target_text(figure),
            "met": met,
            "samples": self.samples.get(figure.key, {}),
        }


def target_text(figure):
    if figure.target is None:
        return "-"
    sign = ">=" if figure.higher_is_better else "<="
    if figure.baseline is None:
        return f"{sign} {figure.target:g} {figure.unit}"
    return f"{sign} {figure.target:g}x {figure.baseline}"


def measure_pushes(clients, blob, digest, settings, results):
    """Monolithic, chunked and streamed pushes of the blob to each registry.

    One unmeasured round first; then the kinds and the servers take turns in
    an order that changes every round, so no server always follows another's
    256 MiB write.
    """
    chunk = settings.chunk * MIB
    kinds = [
        ("push_monolithic", lambda client: client.push_monolithic),
        ("push_chunked", lambda client: partial(client.push_chunked, chunk_size=chunk)),
        ("push_streamed", lambda client: client.push_streamed),
    ]
    names = list(clients)
    for round_number in range(settings.repeat + 1):
        for key, method in rotated(kinds, round_number):
            for name in rotated(names, round_number):
                push = method(clients[name])
                used = cpu_seconds(clients[name].server)
                speed = rate(settings.size, push, "bench/blob", blob, digest)
                if round_number:
                    results.add(key, name, speed)
                    results.add(
                        "push_cpu", name, cpu_seconds(clients[name].server) - used
                    )


def rotated(items, turns):
    """The items, rotated left ``turns`` times."""
    turns %= len(items)
    return items[turns:] + items[:turns]


def rate(size, push, *args):
    """Run a push and return its throughput in MiB/s."""
    started = time.perf_counter()
    push(*args)
    return size / (time.perf_counter() - started)


def blob_urls(servers, clients, digest):
    """Where each server serves the blob, with the headers a GET needs."""
    urls = {}
    for name, client in clients.items():
        url = f"{servers[name].url}/v2/bench/blob/blobs/{digest}"
        urls[name] = (url, client.auth_headers())
    if "nginx" in servers:
        hex_digest = digest.split(":")[1]
        path = f"/blobs/sha256/{hex_digest[:2]}/{hex_digest}"
        urls["nginx"] = (servers["nginx"].url + path, {})
    return urls


def measure_downloads(urls, settings, results):
    """Blob GET throughput with one client and with four at once."""
    size_bytes = settings.size * MIB
    for _ in range(settings.repeat):
        for name, (url, headers) in urls.items():
            for clients, key in ((1, "blob_get_1"), (4, "blob_get_4")):
                seconds = curl_download([url] * clients, headers, size_bytes)
                results.add(key, name, clients * settings.size / seconds)


def prepare_listings(client, settings):
    """Push the manifest's image, the tagged repository, the catalog's repositories."""
    client.authorize_names(["bench/manifest", "bench/tags"])
    client.put_manifest(
        "bench/manifest", "latest", small_image(client, "bench/manifest", 0)
    )
    manifest = small_image(client, "bench/tags", 0)
    for index in range(settings.tags):
        client.put_manifest("bench/tags", f"t{index:05d}", manifest)
    digests = [entry["digest"] for entry in json.loads(manifest)["layers"]]
    digests.append(json.loads(manifest)["config"]["digest"])
    names = [f"bench/repos/r{index:05d}" for index in range(settings.repos)]
    for start in range(0, len(names), 50):
        batch = names[start : start + 50]
        client.authorize_names(["bench/tags", *batch])
        for name in batch:
            for digest in digests:
                client.mount_blob(name, digest, "bench/tags")
            client.put_manifest(name, "latest", manifest)


def listing_targets(servers, clients, settings):
    """The paths and headers of the manifest, tag list and catalog GETs.

    Listings are paged as clients page them (``n``, then the ``Link`` header),
    since distribution refuses pages larger than 1000.
    """
    targets = {}
    for name, client in clients.items():
        client.authorize(["repository:bench/manifest:pull"])
        manifest = {"Accept": MANIFEST_ACCEPT, **client.auth_headers()}
        client.authorize(["repository:bench/tags:pull"])
        tags = client.auth_headers()
        client.authorize(["registry:catalog:*"])
        catalog = client.auth_headers()
        first_tags = f"/v2/bench/tags/tags/list?n={LISTING_PAGE}"
        first_catalog = f"/v2/_catalog?n={LISTING_PAGE}"
        targets[name] = {
            "manifest": (servers[name].url,
                         ["/v2/bench/manifest/manifests/latest"], manifest),
            "tag_list": (servers[name].url,
                         listing_pages(client, first_tags, tags, "tags",
                                       settings.tags), tags),
            "catalog": (servers[name].url,
                        listing_pages(client, first_catalog, catalog,
                                      "repositories", settings.repos), catalog),
        }  # fmt: skip
    return targets


def listing_pages(client, path, headers, field, at_least):
    """Follow a listing's pages; return their paths once it holds ``at_least``."""
    pages, entries = [], 0
    while path:
        pages.append(path)
        _, found, body = client.request("GET", path, headers=headers)
        entries += len(json.loads(body)[field] or [])
        link = LINK_PATTERN.match(found.get("link", ""))
        path = link[1] if link else None
    if entries < at_least:
        raise BenchError(f"{client.server.name}: {pages[0]} lists {entries} entries")
    return pages


def measure_requests(targets, settings, results):
    """Manifest GETs, whole tag lists and whole catalogs per second, with wrk."""
    for _ in range(settings.repeat):
        for name, target in targets.items():
            base, paths, headers = target["manifest"]
            rps, p99 = run_wrk(base, paths, headers, settings)
            results.add("manifest_get", name, rps)
            results.add("manifest_p99", name, p99)
            if name == "distribution" or headers.get("Authorization"):
                # This registry always checks a token (anonymous pulls get one too),
                # so the with-token figure is the same run, set against the
                # distribution figure without auth.
                results.add("manifest_get_token", name, rps)
            for key in ("tag_list", "catalog"):
                base, paths, headers = target[key]
                rps, _ = run_wrk(base, paths, headers, settings)
                results.add(key, name, rps / len(paths))


def measure_memory(servers, clients, files, settings, results):
    """Peak worker RSS while each blob file is pushed and then pulled."""
    for key, (path, digest, size) in files.items():
        for name, server in servers.items():
            with MemoryWatch(server) as watch:
                if name in clients:
                    clients[name].push_monolithic("bench/memory", path, digest)
                    url = f"{server.url}/v2/bench/memory/blobs/{digest}"
                    headers = clients[name].auth_headers()
                else:
                    hex_digest = digest.split(":")[1]
                    url = f"{server.url}/blobs/sha256/{hex_digest[:2]}/{hex_digest}"
                    headers = {}
                curl_download([url], headers, size)
            results.add(key, name, watch.peak_mib)


def run_benchmark(tmp, settings, results):
    """Start everything, measure every figure, stop everything."""
    with ExitStack() as stack:
        servers = {"registry": stack.enter_context(start_registry(tmp))}
        optional(
            results,
            "distribution",
            lambda: servers.__setitem__(
                "distribution",
                stack.enter_context(start_distribution(tmp, settings.install)),
            ),
        )
        has_wrk = optional(
            results, "wrk", lambda: find_binary("wrk", "wrk", settings.install)
        )
        # fmt: skip
        clients = {name: Client(server) for name, server in servers.items()}

        blob = tmp / "blob"
        digest = write_data(blob, settings.size * MIB, 1)
        for client in clients.values():
            client.authorize_names(["bench/blob", "bench/memory"])
        if "pushes" in settings.only:
            measure_pushes(clients, blob, digest, settings, results)
        if not settings.only & {"downloads", "requests", "memory", "docker"}:
            return

        optional(
            results,
            "nginx",
            lambda: servers.__setitem__(
                "nginx",
                stack.enter_context(
                    start_nginx(tmp, servers["registry"].data, settings.install)
                ),
            ),
        )
        # fmt: skip
        if "downloads" in settings.only:
            measure_downloads(blob_urls(servers, clients, digest), settings, results)

        if "requests" in settings.only:
            for client in clients.values():
                prepare_listings(client, settings)
            targets = listing_targets(servers, clients, settings)
            if has_wrk:
                measure_requests(targets, settings, results)

        if "memory" in settings.only:
            measure_big_blob_memory(
                servers, clients, tmp, (blob, digest), settings, results
            )

        hosts = {name: server.host for name, server in servers.items()
                 if name in clients}  # fmt: skip
        if "docker" in settings.only:
            optional(results, "docker", lambda: measure_docker(
                hosts, tmp, settings, results))  # fmt: skip


def measure_big_blob_memory(servers, clients, tmp, small, settings, results):
    """Peak worker memory with the run's blob and with a big one made for it."""
    blob, digest = small
    for client in clients.values():
        client.authorize_names(["bench/memory"])
    big = tmp / "big"
    big_digest = write_data(big, settings.memory_size * MIB, 2)
    files = {
        "memory_small": (blob, digest, settings.size * MIB),
        "memory_big": (big, big_digest, settings.memory_size * MIB),
    }
    measure_memory(servers, clients, files, settings, results)
    big.unlink()


def optional(results, part, action):
    """Run a part that needs a program; record it as missing if it cannot run."""
    try:
        action()
    except Missing as reason:
        results.missing[part] = str(reason)
        print(f"missing: {reason}", file=sys.stderr)
        return False
    return True


def machine():
    """What the run ran on."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": len(Path("/proc/cpuinfo").read_text().split("processor\t:")) - 1,
        "cpu": model,
        "kernel": platform.release(),
        "load average at the end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        # The machine is shared: its load says how much the figures may be off.
        "python": platform.python_version(),
        "gunicorn": metadata.version("gunicorn"),
        "distribution": program_version(["docker-registry", "--version"]),
        "nginx": program_version(["nginx", "-v"]),
        "curl": program_version(["curl", "--version"]).split(" (")[0],
        "wrk": program_version(["wrk", "--version"]).split(" [")[0],
    }


def program_version(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


def number(value, unit):
    if value is None:
        return "-"
    if unit == "s" or unit == "ms" or value < 100:
        return f"{value:.2f}"
    return f"{value:,.0f}"


def format_table(rows):
    """The results as a Markdown table."""
    lines = [
        "| figure | unit | registry | distribution | nginx | ratio | target | met |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        cells = [row["figure"], row["unit"]]
        cells += [number(row[server], row["unit"]) for server in SERVERS]
        cells += [ratio, row["target"], met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller blobs, fewer repeats, shorter wrk runs",
    )
    parser.add_argument("--size", type=int, help="blob size in MiB (256)")
    parser.add_argument("--chunk", type=int, default=16, help="PATCH size in MiB")
    parser.add_argument(
        "--memory-size", type=int, help="blob size in MiB for the memory figure (2048)"
    )
    parser.add_argument(
        "--image", type=int, default=64, help="docker image size in MiB"
    )
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--repos", type=int, default=2000)
    parser.add_argument("--repeat", type=int, help="measurements per figure (5)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--no-install",
        dest="install",
        action="store_false",
        help="never apt-get install a missing program",
    )
    parser.add_argument("--tmp", help="folder for the run's data (system default)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=PARTS,
        help="measure only these parts (all of them)",
    )
    arguments = parser.parse_args(argv)
    arguments.only = set(arguments.only)
    defaults = QUICK if arguments.quick else FULL
    for key, value in defaults.items():
        if getattr(arguments, key) is None:
            setattr(arguments, key, value)
    return arguments


def stop_on_signal(number, _frame):
    """Turn TERM (or an INT that the shell would ignore) into a clean exit."""
    raise SystemExit(128 + number)


def main(argv=None):
    settings = parse_arguments(argv)
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop_on_signal)
    results = Results()
    started = time.monotonic()
    settings.load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="registry-bench-", dir=settings.tmp) as tmp:
        run_benchmark(Path(tmp), settings, results)
        # Report before the (slow) removal of the run's data.
        report(settings, results, argv, time.monotonic() - started)
    return 0


def report(settings, results, argv, seconds):
    """Print the table; write the JSON report when asked."""
    rows = results.rows(settings)
    print(format_table(rows), flush=True)
    for part, reason in results.missing.items():
        print(f"missing {part}: {reason}")
    document = {
        "command": " ".join(["python", "bench/run.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "settings": {k: v for k, v in vars(settings).items() if k not in ("json",)},
        "seconds": round(seconds, 1),
        "figures": rows,
        "missing": results.missing,
    }
    if settings.json:
        settings.json.write_text(json.dumps(document, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
