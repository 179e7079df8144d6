"""OSNet trunks: torchreid's parameter names, shapes and order; stride 16."""
from __future__ import annotations

import pytest
import torch

from engine.models.osnet import OSNetTrunk, build_osnet_trunk, osnet_arch
from tests.engine.torchreid_layout import LAYOUTS, OSNET_VARIANTS


@pytest.mark.parametrize("arch", OSNET_VARIANTS)
def test_the_trunk_has_torchreids_names_shapes_and_order(arch):
    with torch.device("meta"):
        trunk, channels = build_osnet_trunk(arch)
    layout = [(k, shape) for k, shape in LAYOUTS[arch] if not k.startswith(("fc.", "classifier."))]
    assert [(k, list(v.shape)) for k, v in trunk.state_dict().items()] == layout
    fc_in = dict(LAYOUTS[arch])["fc.0.weight"][1]
    assert channels == fc_in


def test_the_config_lists_every_osnet_this_module_builds():
    from engine.models.config import OSNET_ARCHS

    assert set(OSNET_ARCHS) == set(OSNET_VARIANTS)


@pytest.mark.parametrize("arch", ["osnet_x0_25", "osnet_ain_x1_0"])
def test_maps_are_a_sixteenth_of_the_input(arch):
    trunk, channels = build_osnet_trunk(arch)
    with torch.no_grad():
        maps = trunk.eval()(torch.randn(2, 3, 64, 48))
    assert maps.shape == (2, channels, 4, 3)


def test_the_arch_follows_from_the_stem():
    assert osnet_arch(16, ain=False) == "osnet_x0_25"
    assert osnet_arch(64, ain=False) == "osnet_x1_0"
    assert osnet_arch(64, ain=True) == "osnet_ain_x1_0"
    assert osnet_arch(48, ain=True) is None          # torchreid's osnet_ain_x0_75: not built here
    assert osnet_arch(40, ain=False) is None


def test_an_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="osnet_x1_0"):
        OSNetTrunk("osnet_x2_0")
