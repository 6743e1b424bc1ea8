"""What a fresh process imports: a fit must not pay for modules it never runs (issue "Fast from the first call")."""

import subprocess
import sys
from pathlib import Path

import neurorl


def test_fitting_and_cli_do_not_import_scipy():
    # scipy.special alone costs about 0.3 s of every fresh process; MAP runs the compiled JAX likelihood and needs
    # none of it (neurorl._lazy imports it at first use)
    code = ("import sys, neurorl, neurorl.fitting, neurorl.cli, neurorl.agents\n"
            "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(neurorl.__file__).resolve().parents[1])  # this checkout's neurorl
    assert out.stdout.strip() == "[]"


def test_lazy_module_reads_through():
    import scipy.special

    from neurorl._lazy import scipy_special

    assert scipy_special.logsumexp is scipy.special.logsumexp
