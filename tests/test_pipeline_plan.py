"""The memory plan: what each configuration needs, which one a budget gets, and that the computed weight bytes are
what the loader really allocates (the tiny releases, loaded native, int8 and nf4)."""

import shutil

import pytest
import torch

from ivlm_core import paths
from ivlm_core.cli import main
from ivlm_core.localize import quantize
from ivlm_core.localize.localizer import Localizer
from ivlm_core.pipeline import plan as P

EXPECTED_GPU = {16: "joint-nf4", 24: "joint-int8", 48: "joint", 80: "separate"}  # bf16 where not quantised
EXPECTED_CPU = {24: "joint-int8", 48: "separate-int8", 80: "joint"}  # float32 where not quantised


@pytest.fixture(scope="module")
def gpu_plans():
    return P.plan_all("cuda", nominal=True)


@pytest.mark.parametrize("budget_gb", sorted(EXPECTED_GPU))
def test_gpu_budgets_get_the_most_accurate_configuration_that_fits(gpu_plans, budget_gb) -> None:
    choice = P.choose(gpu_plans, int(budget_gb * P.GB), "test")
    assert choice.plan.configuration.name == EXPECTED_GPU[budget_gb]
    assert choice.plan.need_bytes <= budget_gb * P.GB
    better = [
        p
        for p in gpu_plans
        if P.CONFIGURATIONS.index(p.configuration) < P.CONFIGURATIONS.index(choice.plan.configuration)
    ]
    assert all(p.need_bytes > budget_gb * P.GB for p in better)  # nothing more accurate fits
    assert f"of the {budget_gb:.1f} GB budget" in choice.reason


@pytest.mark.parametrize("budget_gb", sorted(EXPECTED_CPU))
def test_cpu_plans_count_float32_weights(budget_gb) -> None:
    plans = P.plan_all("cpu", nominal=True)
    assert P.choose(plans, int(budget_gb * P.GB), "test").plan.configuration.name == EXPECTED_CPU[budget_gb]


def test_the_targets_in_the_plan(gpu_plans) -> None:
    """Issue targets: the 4-bit pipeline within 12-16 GB (a 16 GB card with room), the joint bf16 near 32 GB."""
    need = {(p.configuration.name, p.sam_batch): p.need_gb for p in gpu_plans}
    assert need[("joint-nf4", 1)] < 14.0
    assert need[("joint", 1)] < 33.0
    for name in ("separate", "joint"):  # precision orders the needs
        assert need[(name, 4)] > need[(f"{name}-int8", 4)] > need[(f"{name}-nf4", 4)]
    assert all(need[(p.configuration.name, 4)] > need[(p.configuration.name, 1)] for p in gpu_plans)


def test_parts_are_counted_from_the_configs(gpu_plans) -> None:
    plan = next(p for p in gpu_plans if p.configuration.name == "joint" and p.sam_batch == 4)
    parts = {part.name: part.bytes for part in plan.weights}
    llm = parts[f"{P.JOINT_RELEASE}: language model"]
    assert 13.0e9 * 2 < llm < 13.1e9 * 2  # LLaMA-2-13B + 5 tokens, bf16
    assert parts[f"{P.JOINT_RELEASE}: SAM ViT-H"] == 641_090_864 * 2
    assert parts["CLIP ViT-L/14 (shared)"] == 303_180_033 * 2
    assert plan.peak_transient.name == "SAM image encoder" and plan.peak_transient.bytes > 4 * 1024**3
    assert plan.kv_cache.bytes == 2 * 40 * int(plan.kv_cache.note.split()[0]) * 5120 * 2


def test_a_budget_too_small_for_everything_names_the_smallest_configuration(gpu_plans) -> None:
    with pytest.raises(P.BudgetTooSmallError) as info:
        P.choose(gpu_plans, 6 * P.GB, "--gpu-memory-gb 6")
    smallest = min(gpu_plans, key=lambda p: p.need_bytes)
    assert info.value.code == "GPU_MEMORY_TOO_SMALL"
    assert "joint-nf4" in info.value.message and f"{smallest.need_gb:.1f} GB" in info.value.message
    assert "--gpu-memory-gb 6" in info.value.message and "ivlm plan" in info.value.hint


@pytest.mark.parametrize("precision", ["native", "int8", "nf4"])
def test_planned_language_model_bytes_are_what_the_loader_allocates(tiny_models, precision) -> None:
    folder = tiny_models.releases[P.HUMAN_RELEASE]
    localizer = Localizer.from_folders(folder, tiny_models.clip, dtype=torch.float32, llm_precision=precision)
    shapes = P.release_shapes(localizer.network.config, P.HUMAN_RELEASE)
    planned, _ = P.llm_weight_bytes(shapes, precision, torch.float32)
    measured = quantize.weight_bytes(localizer.network.llm)
    assert abs(planned - measured) <= 0.02 * measured, (planned, measured)
    heads = sum(quantize.weight_bytes(m) for m in (localizer.network.mm_projector, localizer.network.text_hidden_fcs))
    heads += quantize.weight_bytes(localizer.network.cam_pose_encoder)
    assert shapes.heads * 4 == heads
    assert shapes.sam * 4 != quantize.weight_bytes(localizer.network.sam)  # tiny SAM; the plan assumes ViT-H


def test_plan_reads_the_models_folder_and_knows_which_releases_are_there(tmp_path, tiny_models) -> None:
    shutil.copytree(tiny_models.releases[P.JOINT_RELEASE], paths.interactvlm_release_dir(P.JOINT_RELEASE, tmp_path))
    shutil.copytree(tiny_models.clip, paths.clip_dir(tmp_path))
    plans = P.plan_all("cpu", root=tmp_path)
    separate = [p for p in plans if not p.configuration.joint]
    assert all(not p.available and P.HUMAN_RELEASE in p.missing for p in separate)
    choice = P.choose(plans, None, "unrestricted")
    assert choice.plan.configuration.name == "joint" and choice.plan.available
    tiny_llm = choice.plan.weights[0]
    assert tiny_llm.bytes < 10 * 1024**2  # the tiny release's own config was read, not the 13B shapes


def test_ivlm_plan_prints_every_configuration_and_the_choice(capsys) -> None:
    assert main(["plan", "--gpu-memory-gb", "16", "--nominal"]) == 0
    text = capsys.readouterr().out
    for configuration in P.CONFIGURATIONS:
        assert configuration.name in text
    assert "<- chosen" in text and "Chosen: joint-nf4" in text and "largest transient" in text and "margin" in text
    assert main(["plan", "--gpu-memory-gb", "4", "--nominal"]) == 0
    assert "GPU_MEMORY_TOO_SMALL" in capsys.readouterr().out


def test_doctor_takes_the_joint_release_instead_of_the_two(tmp_path, tiny_models) -> None:
    from ivlm_core.doctor import check_model_files, joint_release_status, required_missing

    names = lambda items: {s.name for s in items}  # noqa: E731
    missing = required_missing(check_model_files(tmp_path), tmp_path)
    assert sum("InteractVLM release" in n for n in names(missing)) == 2 and not joint_release_status(tmp_path).present
    shutil.copytree(tiny_models.releases[P.JOINT_RELEASE], paths.interactvlm_release_dir(P.JOINT_RELEASE, tmp_path))
    assert joint_release_status(tmp_path).present
    assert not any("InteractVLM release" in n for n in names(required_missing(check_model_files(tmp_path), tmp_path)))
