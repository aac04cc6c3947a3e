"""`registry cert`: a local CA, a server certificate that verifies, private keys."""

import ipaddress
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from app import certs

NAMES = ["codehex-local", "localhost", "127.0.0.1", "::1"]


@pytest.fixture
def tls_folder(app, tmp_path):
    """The app's TLS folder, under tmp_path."""
    folder = tmp_path / "tls"
    app.config["REGISTRY_TLS_DIR"] = str(folder)
    return folder


@pytest.fixture
def issue(runner, tls_folder):
    """Run `registry cert ARGS` and return the result."""

    def run_cert(*args):
        return runner.invoke(args=["registry", "cert", *args])

    return run_cert


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def subject_for(name):
    """The SAN entry a client checks when it reaches the server by name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def verify(folder, name, ca_folder=None):
    """Verify the server certificate for name against the CA; raise if it fails."""
    ca = load((ca_folder or folder) / "trust" / "ca.crt")
    verifier = (
        PolicyBuilder().store(Store([ca])).build_server_verifier(subject_for(name))
    )
    return verifier.verify(load(folder / "server.crt"), [])


def snapshot(folder):
    """Every file under folder with its bytes."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", NAMES)
def test_server_certificate_verifies_against_the_ca_for_each_name(
    issue, tls_folder, name
):
    assert issue(*NAMES).exit_code == 0

    chain = verify(tls_folder, name)

    assert chain[-1] == load(tls_folder / "trust" / "ca.crt")


@pytest.mark.parametrize("name", ["other-host", "127.0.0.2", "codehex-local.lan"])
def test_server_certificate_does_not_verify_for_another_name(issue, tls_folder, name):
    issue(*NAMES)

    with pytest.raises(VerificationError):
        verify(tls_folder, name)


def test_server_certificate_does_not_verify_against_another_ca(runner, app, tmp_path):
    for folder in ("one", "two"):
        app.config["REGISTRY_TLS_DIR"] = str(tmp_path / folder)
        runner.invoke(args=["registry", "cert", "localhost"])

    with pytest.raises(VerificationError):
        verify(tmp_path / "one", "localhost", ca_folder=tmp_path / "two")


def test_server_certificate_is_for_servers_only(issue, tls_folder):
    issue("localhost")

    certificate = load(tls_folder / "server.crt")

    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert list(usage.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert constraints.value.ca is False


def test_certificates_are_valid_now_and_for_a_bounded_time(issue, tls_folder):
    issue("localhost")

    server = load(tls_folder / "server.crt")
    ca = load(tls_folder / "trust" / "ca.crt")

    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert timedelta(days=300) < lifetime < timedelta(days=400)
    assert ca.not_valid_after_utc > server.not_valid_after_utc


def test_keys_are_readable_by_their_owner_only(issue, tls_folder):
    issue("localhost")

    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode) for path in snapshot(tls_folder)
    }

    assert modes == {
        "ca.key": 0o600,
        "server.key": 0o600,
        "server.crt": 0o644,
        "ca.crt": 0o644,
    }


def test_rerun_with_force_reuses_the_ca(issue, tls_folder):
    issue("localhost")
    ca_files = {p: p.read_bytes() for p in tls_folder.glob("**/ca.*")}
    first_server = load(tls_folder / "server.crt")

    result = issue("localhost", "codehex-local", "--force")

    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in tls_folder.glob("**/ca.*")} == ca_files
    assert load(tls_folder / "server.crt") != first_server
    verify(tls_folder, "codehex-local")


def test_rerun_for_the_same_names_keeps_everything(issue, tls_folder):
    issue("localhost", "127.0.0.1")
    before = snapshot(tls_folder)

    result = issue("127.0.0.1", "LOCALHOST")

    assert result.exit_code == 0, result.output
    assert "kept" in result.output
    assert snapshot(tls_folder) == before


def test_rerun_for_other_names_needs_force(issue, tls_folder):
    issue("localhost")
    before = snapshot(tls_folder)

    result = issue("codehex-local")

    assert result.exit_code == 1
    assert "--force" in result.output
    assert snapshot(tls_folder) == before


def test_prints_gunicorn_flags_docker_paths_and_skopeo_folder(issue, tls_folder):
    result = issue("codehex-local", "127.0.0.1", "::1", "--port", "6000")

    assert f"--certfile {tls_folder / 'server.crt'}" in result.output
    assert f"--keyfile {tls_folder / 'server.key'}" in result.output
    for host in ("codehex-local:6000", "127.0.0.1:6000", "[::1]:6000"):
        assert f"/etc/docker/certs.d/{host}/ca.crt" in result.output
    assert f"--cert-dir {tls_folder / 'trust'}" in result.output


@pytest.mark.parametrize(
    "name",
    [
        "bad_name",
        "-leading-hyphen",
        "trailing-hyphen-",
        "two..dots",
        "300.1.1.1",
        "x" * 64,
        "*.example.org",
        "fe80::1%eth0",
        "with space",
        "",
        "caf\u00e9",
    ],
)
def test_bad_hostname_is_refused_in_one_line_and_writes_nothing(
    issue, tls_folder, name
):
    result = issue("localhost", "--", name)

    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert repr(name) in result.output
    assert not tls_folder.exists()


def test_no_hostname_is_a_usage_error(issue, tls_folder):
    result = issue()

    assert result.exit_code == 2
    assert not tls_folder.exists()


def test_a_ca_certificate_without_its_key_is_refused(issue, tls_folder):
    issue("localhost")
    (tls_folder / "ca.key").unlink()

    result = issue("localhost", "--force")

    assert result.exit_code == 1
    assert "ca.key" in result.output


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "server.crt"
    target.write_bytes(b"old")

    def fail(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(certs.os, "replace", fail)
    with pytest.raises(OSError):
        certs.write_file(target, b"new")

    assert [p.name for p in tmp_path.iterdir()] == ["server.crt"]
    assert target.read_bytes() == b"old"
