"""``docker push`` and ``docker pull`` of a 3-layer image, timed per registry.

Each round builds a fresh image FROM scratch with three layers of new random
data, so every push uploads every layer instead of finding it already there.
The first round is not measured: a daemon's first push and pull pay for its
own start, and fell on whichever registry went first. These figures spread
the most from round to round (0.54 to 0.93 s for one pull in one run, the
daemon's own unpacking being most of it), so each is measured twice as many
times as the others.
"""

import os
import time

from clients import write_data
from servers import start_dockerd

MIB = 1024 * 1024
ROUNDS_PER_REPEAT = 2
LAYERS = ("a", "b", "c")
DOCKERFILE = "FROM scratch\n" + "".join(f"COPY {n} /{n}\n" for n in LAYERS)


def measure_docker(hosts, tmp, settings, results):
    """Time docker push and pull of a fresh image to and from every host."""
    with start_dockerd(hosts.values(), settings.install) as docker:
        for round_number in range(ROUNDS_PER_REPEAT * settings.repeat + 1):
            image = build_image(docker, tmp, settings.image, round_number)
            order = list(hosts.items())
            if round_number % 2:
                order.reverse()  # neither registry always goes first
            references = {}
            for name, host in order:
                reference = f"{host}/bench/image:{round_number}"
                docker.run("tag", image, reference)
                seconds = timed(docker.run, "push", reference)
                if round_number:
                    results.add("docker_push", name, seconds)
                references[name] = reference
            docker.run("rmi", image, *references.values())
            for name, _ in order:
                reference = references[name]
                seconds = timed(docker.run, "pull", reference)
                if round_number:
                    results.add("docker_pull", name, seconds)
                docker.run("rmi", reference)


def build_image(docker, tmp, size_mib, round_number):
    """Build a three-layer image of new random data; return its tag."""
    context = tmp / f"image-{round_number}"
    context.mkdir()
    layer_size = max(size_mib * MIB // len(LAYERS), 1)
    for index, name in enumerate(LAYERS):
        write_data(context / name, layer_size, 1000 * round_number + index + 10)
    (context / "Dockerfile").write_text(DOCKERFILE)
    tag = f"bench-image:{round_number}"
    docker.run("build", "--quiet", "--tag", tag, str(context))
    for path in context.iterdir():
        path.unlink()
    context.rmdir()
    return tag


def timed(action, *args):
    """Run action and return the seconds it took.

    What the daemon wrote before (an image built, one removed) is flushed to
    the disk first, so that its writing back does not fall on the action.
    """
    os.sync()
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started
