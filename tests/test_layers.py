"""Layers that point one way: the host and the shared definitions (`Config`, the protocol, the
binary32 model) never load the gateware or Amaranth, so a host talking to a board needs neither."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST_MODULES = sorted(f"systolica.host.{p.stem}" for p in (ROOT / "host").glob("*.py")
                      if p.stem != "__init__")


def test_host_and_shared_modules_load_no_gateware():
    modules = ["systolica.config", "systolica.protocol", "systolica.fp32_model", *HOST_MODULES]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth' "
            "or m.startswith('systolica.rtl'))\nprint(' '.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "", f"loaded by the host: {result.stdout}"
    assert len(HOST_MODULES) > 10


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in sorted(ROOT.glob("*/*.py")):
        if ".venv" in path.parts or "build" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            words = line.split()
            if len(words) >= 4 and words[0] == "from" and words[2] == "import":
                names = " ".join(words[3:]).strip("()").replace(",", " ").split()
                if any(name.startswith("_") and not name.startswith("__") for name in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
