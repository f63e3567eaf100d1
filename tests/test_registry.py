"""Every registered method honours the MethodSpec contract the engine relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deblurcli.engine.tiling import run_tiled
from deblurcli.errors import UnknownMethodError, WeightsMissingError
from deblurcli.methods.loader import load_method
from deblurcli.methods.names import METHOD_NAMES
from deblurcli.methods.registry import all_methods, get_method


def test_names_match_the_registry() -> None:
    assert tuple(all_methods()) == METHOD_NAMES


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(UnknownMethodError, match="classic"):
        get_method("magic")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_contract_on_an_odd_sized_photo(name: str) -> None:
    """Random weights (the test-only switch), a size that is no multiple of anything, tiled: the engine must
    hand back the photo's exact size and every declared map at an integer scale."""
    torch.manual_seed(0)
    method = load_method(name, device=torch.device("cpu"), random_weights_for_testing=True)
    spec = method.spec
    h, w = 45, 61
    x = torch.rand(1, 3, h, w)
    m = spec.multiple_of
    out = run_tiled(method.tile_fn(), x, tile=None, overlap=0, multiple_of=m)
    assert set(out) == {"image", *spec.maps}
    assert out["image"].shape == (1, 3, h, w)
    assert torch.isfinite(out["image"]).all()
    for name_ in spec.maps:
        mh, mw = out[name_].shape[-2:]
        scale = -(-h // mh)
        assert out[name_].shape[:2] == (1, 1) and m % scale == 0 and mw == -(-w // scale)
    assert set(spec.map_units) == set(spec.maps)


@pytest.mark.parametrize("name", [n for n in METHOD_NAMES if get_method(n).needs_weights])
def test_missing_weights_name_the_method_and_the_remedy(name: str, tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError) as info:
        load_method(name, device=torch.device("cpu"), offline=True, cache_dir=tmp_path)
    message = str(info.value)
    assert get_method(name).weights[0] in message and "--weights" in message
