"""A registry client over the Flask test client, and test content shaped like the
OCI conformance suite's: configs, a gzip layer, image manifests, artifacts.

The conformance tests drive the API only through this client, never through
storage, so what they prove is what a real client would see.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

from tests.conftest import get_token

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
OCTET_STREAM = "application/octet-stream"
ANNOTATION = "org.example.conformance.test"


def digest_of(data, algorithm="sha256"):
    """Return the ``algorithm:hex`` digest of bytes."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def descriptor(media_type, data, algorithm="sha256"):
    return {
        "mediaType": media_type,
        "digest": digest_of(data, algorithm),
        "size": len(data),
    }


def encode(document):
    """Return a manifest's bytes: indented, as the conformance suite sends them."""
    return json.dumps(document, indent="\t").encode()


def make_config():
    """Return a config blob unique to this call (a random author)."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "author": os.urandom(8).hex(),
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return encode(config)


def make_layer(text=b"a file in a layer\n"):
    """Return a gzip-compressed tarball holding one small file."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("test.txt")
        member.size = len(text)
        tar.addfile(member, io.BytesIO(text))
    return gzip.compress(archive.getvalue(), mtime=0)


def image_blobs():
    """Return a fresh config and a layer, the blobs of a one-layer image."""
    return make_config(), make_layer()


def image_manifest(config, layers, media_type=OCI_MANIFEST, **fields):
    """Return an OCI image manifest document for a config and layers (bytes)."""
    document = {"schemaVersion": 2}
    if media_type:
        document["mediaType"] = media_type
    document["config"] = descriptor(OCI_CONFIG, config)
    document["layers"] = [descriptor(OCI_LAYER, layer) for layer in layers]
    document.update(fields)
    return document


def tree_state(root):
    """Return ``{relative path: sha256}`` of every file under a storage root."""
    state = {}
    for folder, _subfolders, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as content:
                digest = hashlib.sha256(content.read()).hexdigest()
            state[os.path.relpath(path, root)] = digest
    return state


class Registry:
    """The /v2/ API of one repository, with a token for every action on it."""

    def __init__(self, client, name, *other_names):
        self.client = client
        self.name = name
        scopes = [
            f"repository:{each}:pull,push,delete" for each in (name, *other_names)
        ]
        self.headers = {"Authorization": f"Bearer {get_token(client, *scopes)}"}

    def url(self, path, name=None):
        return f"/v2/{name or self.name}/{path}"

    def request(self, method, url, headers=None, **kwargs):
        """Send a request with the token; ``url`` is a path as a Location gives it."""
        return self.client.open(
            url, method=method, headers={**self.headers, **(headers or {})}, **kwargs
        )

    # Blobs and uploads.

    def start_upload(self, name=None, data=b"", **query):
        url = self.url("blobs/uploads/", name)
        return self.request("POST", url, query_string=query, data=data)

    def patch(self, location, data, content_range=None):
        headers = {"Content-Type": OCTET_STREAM}
        if content_range is not None:
            headers["Content-Range"] = content_range
        return self.request("PATCH", location, headers, data=data)

    def put(self, location, digest, data=b"", content_range=None):
        headers = {"Content-Type": OCTET_STREAM}
        if content_range is not None:
            headers["Content-Range"] = content_range
        return self.request(
            "PUT", location, headers, data=data, query_string={"digest": digest}
        )

    def push_blob(self, data, algorithm="sha256", name=None):
        """Upload a blob with POST then PUT; return the PUT's response."""
        location = self.start_upload(name).headers["Location"]
        return self.put(location, digest_of(data, algorithm), data)

    def blob(self, digest, method="GET", name=None):
        return self.request(method, self.url(f"blobs/{digest}", name))

    # Manifests, tags and referrers.

    def push_manifest(self, reference, body, content_type=OCI_MANIFEST):
        headers = {"Content-Type": content_type} if content_type else {}
        return self.request(
            "PUT", self.url(f"manifests/{reference}"), headers, data=body
        )

    def manifest(self, reference, method="GET"):
        headers = {"Accept": OCI_MANIFEST}
        return self.request(method, self.url(f"manifests/{reference}"), headers)

    def tags(self, **query):
        return self.request("GET", self.url("tags/list"), query_string=query)

    def referrers(self, digest, name=None, **query):
        url = self.url(f"referrers/{digest}", name)
        return self.request("GET", url, query_string=query)

    def push_image_blobs(self):
        """Push a fresh config and layer; return the manifest document naming them."""
        config, layer = image_blobs()
        for blob in (config, layer):
            assert self.push_blob(blob).status_code == 201
        return image_manifest(config, [layer])

    def push_image(self, tag=None, layers=None):
        """Push a config, its layers and an image manifest; return their parts.

        Without a tag the manifest is pushed by its digest.
        """
        config = make_config()
        layers = [make_layer()] if layers is None else layers
        for blob in (config, *layers):
            assert self.push_blob(blob).status_code == 201
        body = encode(image_manifest(config, layers))
        response = self.push_manifest(tag or digest_of(body), body)
        assert response.status_code == 201
        return {"config": config, "layers": layers, "manifest": body}


def error_code(response):
    return response.json["errors"][0]["code"]
