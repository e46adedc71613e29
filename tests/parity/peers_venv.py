"""Run a parity script under the peers' venv/ (made by scripts/peers: Debian's
python with MONAI and friends) when the current interpreter lacks the peer
packages.  Shared by the parity scripts that compare with MONAI."""
import importlib
import os
import sys


def reexec_with_venv(modules, script):
    """None when every module in `modules` imports here; else re-executes
    `script` with venv/bin/python (never returns), or returns 77 (skip) when
    there is no venv or the venv lacks them too."""
    missing = []
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            missing.append(m)
    if not missing:
        return None
    root = os.environ.get("LUMEN_SOURCE_ROOT") or os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    vpy = os.path.join(root, "venv", "bin", "python")
    if os.environ.get("LUMEN_PEERS_REEXEC") or not os.access(vpy, os.X_OK):
        print(f"skip: {', '.join(missing)} missing ({vpy}: run scripts/peers)")
        return 77
    os.environ["LUMEN_PEERS_REEXEC"] = "1"
    os.execv(vpy, [vpy, os.path.abspath(script)] + sys.argv[1:])
    return 77
