"""
tests/integration/certs.py — a test certificate authority made with openssl's command line.

    from certs import TestCA
    ca = TestCA(tmpdir)                                  # self-signed root, ECDSA P-256
    leaf = ca.issue("a.test", names=["a.test", "127.0.0.1"])     # (cert, key) paths
    rsa = ca.issue("b.test", key="rsa")
    old = ca.issue("old.test", expired=True)             # validity ended in 2021
    chained = ca.issue("c.test", via_intermediate=True)  # cert file = leaf + intermediate
    alone = self_signed(tmpdir, "self.test")             # not issued by any CA
    stapled = ca.issue("d.test", via_intermediate=True,   # names an OCSP responder (AIA)
                       ocsp_url="http://127.0.0.1:%d" % port)
    ca.cert                                              # the root, for a client's trust store

Every key and certificate is made fresh in the test's own directory, so no test depends on
a file in the repository or on the clock of the machine that made one. Names that are IP
addresses go into the certificate as IP subjectAltNames, the others as DNS names.
"""

import ipaddress
import os
import subprocess


def _openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _newkey(path, key):
    if key == "rsa":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def _san(names):
    parts = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            parts.append("IP:" + n)
        except ValueError:
            parts.append("DNS:" + n)
    return ",".join(parts)


def _ext_file(path, names, ca, ocsp_url=None):
    with open(path, "w") as f:
        if ca:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
        else:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
            f.write("extendedKeyUsage=serverAuth,clientAuth\n")
            if names:
                f.write("subjectAltName=" + _san(names) + "\n")
            if ocsp_url:
                f.write("authorityInfoAccess=OCSP;URI:" + ocsp_url + "\n")
        f.write("subjectKeyIdentifier=hash\n")


def self_signed(directory, cn, names=None, key="ec"):
    """A certificate signed by its own key; returns (cert_path, key_path)."""
    names = names or [cn]
    base = os.path.join(directory, "self-" + cn)
    _newkey(base + ".key", key)
    _ext_file(base + ".ext", names, ca=False)
    _openssl("req", "-new", "-x509", "-key", base + ".key", "-out", base + ".crt", "-days", "30",
             "-subj", "/CN=" + cn, "-extensions", "v3", "-config", _req_config(base, names))
    return base + ".crt", base + ".key"


def _req_config(base, names):
    path = base + ".cnf"
    with open(path, "w") as f:
        f.write("[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:FALSE\n")
        f.write("subjectAltName=" + _san(names) + "\n")
    return path


class TestCA:
    """A root CA (and, on demand, one intermediate) in `directory`."""

    def __init__(self, directory, name="edgecache test root"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.key = os.path.join(directory, "ca.key")
        self.cert = os.path.join(directory, "ca.crt")
        _newkey(self.key, "ec")
        _ext_file(os.path.join(directory, "ca.ext"), None, ca=True)
        _openssl("req", "-new", "-x509", "-key", self.key, "-out", self.cert, "-days", "30",
                 "-subj", "/CN=" + name, "-config", self._ca_config(), "-extensions", "v3")
        self._serial = 1
        self._inter = None

    def _ca_config(self):
        path = os.path.join(self.dir, "ca.cnf")
        with open(path, "w") as f:
            f.write("[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\n"
                    "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n")
        return path

    def _sign(self, csr, out, ext, issuer_cert, issuer_key, expired):
        self._serial += 1
        if expired:
            # `openssl ca` is the one command of OpenSSL 3.0 that takes explicit dates
            db = os.path.join(self.dir, "index%d.txt" % self._serial)
            open(db, "w").close()
            conf = os.path.join(self.dir, "ca%d.cnf" % self._serial)
            with open(conf, "w") as f:
                f.write("[ca]\ndefault_ca=c\n[c]\ndatabase=%s\nnew_certs_dir=%s\nserial=%s\n"
                        "default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n"
                        % (db, self.dir, os.path.join(self.dir, "serial%d" % self._serial)))
            with open(os.path.join(self.dir, "serial%d" % self._serial), "w") as f:
                f.write("%04X\n" % self._serial)
            _openssl("ca", "-batch", "-config", conf, "-in", csr, "-out", out, "-cert", issuer_cert,
                     "-keyfile", issuer_key, "-startdate", "20200101000000Z", "-enddate", "20210101000000Z",
                     "-extfile", ext, "-notext")
        else:
            _openssl("x509", "-req", "-in", csr, "-out", out, "-CA", issuer_cert, "-CAkey", issuer_key,
                     "-set_serial", str(self._serial), "-days", "30", "-extfile", ext, "-sha256")

    def intermediate(self):
        """The intermediate CA's (cert, key), made on first use."""
        return self._intermediate()

    def _intermediate(self):
        if self._inter is None:
            key = os.path.join(self.dir, "inter.key")
            cert = os.path.join(self.dir, "inter.crt")
            csr = os.path.join(self.dir, "inter.csr")
            ext = os.path.join(self.dir, "inter.ext")
            _newkey(key, "ec")
            _ext_file(ext, None, ca=True)
            _openssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=edgecache test intermediate")
            self._sign(csr, cert, ext, self.cert, self.key, False)
            self._inter = (cert, key)
        return self._inter

    def issue(self, cn, names=None, key="ec", expired=False, via_intermediate=False, ocsp_url=None):
        """A leaf certificate for `names` (default [cn]); returns (cert_path, key_path). With
        via_intermediate the cert file holds the leaf then the intermediate (a chain). With
        ocsp_url its authorityInfoAccess names that OCSP responder."""
        names = names or [cn]
        tag = "%s-%d" % (cn.replace("*", "star"), self._serial + 1)
        base = os.path.join(self.dir, tag)
        _newkey(base + ".key", key)
        _openssl("req", "-new", "-key", base + ".key", "-out", base + ".csr", "-subj", "/CN=" + cn)
        _ext_file(base + ".ext", names, ca=False, ocsp_url=ocsp_url)
        if via_intermediate:
            icert, ikey = self._intermediate()
            self._sign(base + ".csr", base + ".leaf", base + ".ext", icert, ikey, expired)
            with open(base + ".crt", "wb") as out:
                for part in (base + ".leaf", icert):
                    with open(part, "rb") as f:
                        out.write(f.read())
        else:
            self._sign(base + ".csr", base + ".crt", base + ".ext", self.cert, self.key, expired)
        return base + ".crt", base + ".key"
