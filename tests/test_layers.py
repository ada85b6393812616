"""The package layers of docs/design.md hold: every import of another package points down (or across
a layer), never up, at module level, inside functions and under ``TYPE_CHECKING`` alike."""

import ast
from pathlib import Path

import seeing_sound

#: layer -> top-level packages and modules of ``seeing_sound`` (docs/design.md, "Layers")
LAYERS = {
    1: {"__init__", "__main__", "config", "errors", "hashing", "seeding", "precision", "tabular"},
    2: {"audio", "engine", "builders", "imaging", "image_sources"},
    3: {"encoders", "grounding", "concepts", "dataset", "pool", "retrieval", "features", "bench"},
    4: {"model"},
    5: {"sonify", "compose", "evaluation", "scoring", "studies", "leakage", "report"},
    6: {"pairs", "hub", "app", "demo", "testing"},
    7: {"cli"},
}
ROOT = Path(seeing_sound.__file__).parent


def _imports(path: Path):
    """(line, imported top-level package) of every ``seeing_sound.X`` import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seeing_sound."):
            yield node.lineno, node.module.split(".")[1]
        elif isinstance(node, ast.ImportFrom) and node.module == "seeing_sound":
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("seeing_sound."):
                    yield node.lineno, alias.name.split(".")[1]


def test_every_package_has_a_layer():
    layer_of = {name for names in LAYERS.values() for name in names}
    code = [p for p in ROOT.iterdir() if p.suffix == ".py" or (p.is_dir() and any(p.rglob("*.py")))]
    present = {p.stem if p.is_file() else p.name for p in code} - {"__pycache__"}  # data folders hold no code
    assert present <= layer_of, f"add these to LAYERS (and docs/design.md): {sorted(present - layer_of)}"


def test_imports_only_point_down():
    layer_of = {name: layer for layer, names in LAYERS.items() for name in names}
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        here = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for line, target in _imports(path):
            if target != here and layer_of.get(target, 0) > layer_of[here]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({here}, layer {layer_of[here]}) imports {target} "
                              f"(layer {layer_of[target]})")  # fmt: skip
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)
