"""Own SHA-256 against OpenSSL's, in C, on ledgerdr's call pattern (issue: keep the own one only if faster).

Builds bench/sha256_vs_openssl.c with the project's sha256.c and links libcrypto (needs a C compiler and
OpenSSL's headers, e.g. Debian's libssl-dev), then prints nanoseconds per one-shot hash of 32-200 byte
inputs for: the own code (SHA-NI when the CPU has it), OpenSSL's SHA256() and its EVP interface. Both are
called from C, as the accelerators call it, so Python's call overhead is not part of the figure.

    python bench/bench_sha256.py [--inputs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "src" / "ledgerdr" / "_native"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "sha256_vs_openssl"
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-I", str(NATIVE), str(ROOT / "bench" / "sha256_vs_openssl.c"),
                        str(NATIVE / "sha256.c"), "-o", str(exe), "-lcrypto"], check=True)
        result = json.loads(subprocess.run([str(exe), str(args.inputs)], check=True, capture_output=True,
                                           text=True).stdout)
    result["load_average"] = os.getloadavg()
    result["own_vs_openssl_evp"] = round(result["openssl_evp_ns"] / result["own_ns"], 2)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
