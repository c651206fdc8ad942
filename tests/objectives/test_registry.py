"""The registry: names, class data, errors."""

import pytest

from contrastkit import objectives
from contrastkit.objectives import Registry, Status
from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo
from contrastkit.objectives.reducers import WeightedCE

SPEC_NAMES = {
    "infonce", "ntxent", "simcse", "simcse_sup", "clip", "jointlh", "summarglh", "lsepair", "rand1lh",
    "dcl", "dclw", "dhel", "mv_infonce", "mv_dhel", "supcon", "softcon", "siglip", "amcl", "groco", "cacr",
    "mochi", "supremix", "whitenedcse", "cosent", "codiemb",
}  # fmt: skip


def _dummy(name: str) -> type[MatrixObjective]:
    class Dummy(MatrixObjective):
        info = ObjectiveInfo(name, "d", Status.PAPER, "none", Kind.MATRIX, "S", "R1", "0")

        @property
        def reducer(self) -> WeightedCE:
            return WeightedCE()

    return Dummy


def test_every_spec_objective_is_registered() -> None:
    missing = SPEC_NAMES - set(objectives.names())
    assert not missing, f"not registered: {sorted(missing)}"


def test_class_data_is_complete() -> None:
    for info in objectives.infos():
        assert info.name == info.name.lower()
        assert isinstance(info.status, Status)
        assert info.citation and info.inputs and info.reducer and info.section, info.name
        assert objectives.REGISTRY.cls(info.name).info is info


def test_partial_and_unavailable_say_so() -> None:
    for info in objectives.infos():
        if info.status in (Status.PARTIAL, Status.UNAVAILABLE):
            doc = (objectives.REGISTRY.cls(info.name).__doc__ or "") + info.notes
            assert info.status.value in doc.lower() or "unverified" in doc.lower(), info.name


def test_duplicate_name_is_rejected() -> None:
    reg = Registry()
    reg.register(_dummy("x"))
    with pytest.raises(ValueError, match="already registered"):
        reg.register(_dummy("x"))


def test_unknown_name_suggests() -> None:
    with pytest.raises(KeyError, match="did you mean infonce"):
        objectives.get("infonc")


def test_unknown_hparam_names_it() -> None:
    with pytest.raises(TypeError, match="no hyperparameter tempreature"):
        objectives.get("infonce", tempreature=0.1)


def test_name_registry_is_shared_by_objectives_and_tasks() -> None:
    """One registry class: normalised names, a duplicate refused, an unknown name a located UnknownNameError."""
    from contrastkit.errors import UnknownNameError
    from contrastkit.evaluation.tasks import TASKS, get_task
    from contrastkit.objectives.registry import NameRegistry

    reg: NameRegistry[int] = NameRegistry("thing", normalize=str.lower)
    reg.add("Alpha", 1)
    assert reg["ALPHA"] == 1 and "alpha" in reg and reg.names() == ["alpha"]
    with pytest.raises(ValueError, match="already registered"):
        reg.add("alpha", 2)
    with pytest.raises(UnknownNameError, match="did you mean alpha"):
        reg["alpah"]
    with pytest.raises(UnknownNameError, match="expected one of alpha"):
        reg["zzz"]
    assert isinstance(TASKS, NameRegistry) and get_task("pair_classification") is get_task("pair-classification")
