import pathlib
import sys

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))


@pytest.fixture(scope="session")
def model_file():
    """The SmolLM2-135M-Instruct Q4_1 GGUF file (opening it takes a few seconds: shared)."""
    from systolica.host.model_file import ModelFile

    return ModelFile()
