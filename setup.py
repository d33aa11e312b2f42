"""Build of the optional C accelerators; everything else is in pyproject.toml.

Each extension is `optional`: on a machine without a C compiler the install still succeeds and
ledgerdr runs on its pure-Python paths (`ledgerdr.native` says which are in use)."""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-std=c99", "-Wall", "-Wno-unused-function"]

setup(
    ext_modules=[
        Extension(
            "ledgerdr._ionhash",
            ["src/ledgerdr/_native/ionhash.c", "src/ledgerdr/_native/encode_doc.c", "src/ledgerdr/_native/hash_binary.c",
             "src/ledgerdr/_native/plain_binary.c",
             "src/ledgerdr/_native/encode_block.c", "src/ledgerdr/_native/snapshot_rows.c",
             "src/ledgerdr/_native/sha256.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "ledgerdr._journal",
            ["src/ledgerdr/_native/journal.c", "src/ledgerdr/_native/sha256.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "ledgerdr._statedigest",
            ["src/ledgerdr/_native/state_digest.c", "src/ledgerdr/_native/sha256.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "ledgerdr._pgcopy",
            ["src/ledgerdr/_native/pgcopy.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "ledgerdr._httpfast",
            ["src/ledgerdr/_native/httpfast.c", "src/ledgerdr/_native/sha256.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
        Extension(
            "ledgerdr._iontext",
            ["src/ledgerdr/_native/iontext.c"],
            optional=True,
            extra_compile_args=_FLAGS,
        ),
    ]
)
