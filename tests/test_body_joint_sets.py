"""Joint sets and maps (hmr.body.joint_sets): consistency of trees, flips and index maps."""
import pytest

from hmr.body import joint_sets as js


@pytest.mark.parametrize("joint_set", list(js.JOINT_SETS.values()), ids=lambda s: s.name)
def test_flip_is_an_involution_that_swaps_sides(joint_set):
    flip = joint_set.flip
    assert sorted(flip) == list(range(len(joint_set)))
    assert [flip[flip[i]] for i in range(len(flip))] == list(range(len(flip)))
    for i, name in enumerate(joint_set.names):
        other = joint_set.names[flip[i]]
        if name.startswith("l_"):
            assert other == "r_" + name[2:]
        elif not name.startswith("r_"):
            assert other == name


@pytest.mark.parametrize("joint_set", [js.SMPL_24, js.MANO_16], ids=lambda s: s.name)
def test_parents_precede_children_and_flip_respects_tree(joint_set):
    parents = joint_set.parents
    assert parents[0] == -1 and all(0 <= p < i for i, p in enumerate(parents[1:], start=1))
    flip = joint_set.flip
    for i, p in enumerate(parents[1:], start=1):
        assert parents[flip[i]] == flip[p]


def test_smpl_and_mano_trees_are_the_official_ones():
    assert js.SMPL_24.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
    assert js.MANO_16.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)


def test_index_maps_are_consistent_by_name():
    h36m, lsp, spin = js.H36M_17, js.LSP_14, js.SPIN_24
    for i, h in enumerate(js.LSP14_FROM_H36M17):
        a, b = lsp.names[i], h36m.names[h]
        assert a == b or (a, b) in {("neck", "thorax")}
    for i, h in enumerate(js.SPIN24_FROM_H36M17):
        if h is not None and i < 12:
            assert spin.names[i] == h36m.names[h]
    assert [spin.names[i] for i in js.LSP14_FROM_SPIN24][:12] == list(lsp.names[:12])


def test_freihand_from_mano_order():
    mano21 = list(js.MANO_16.names) + ["thumb4", "index4", "middle4", "ring4", "pinky4"]
    assert [mano21[i] for i in js.FREIHAND21_FROM_MANO21] == list(js.FREIHAND_21.names)
    assert sorted(js.FREIHAND21_FROM_MANO21) == list(range(21))


def test_lookup_errors_name_the_known_sets():
    with pytest.raises(KeyError, match="smpl24"):
        js.get_joint_set("smpl25")
    with pytest.raises(KeyError, match="pelvis"):
        js.SMPL_24.index("hips")
