import json

import pytest
import torch

from edgeface.card import OUTPUT_ATTRIBUTES, OUTPUT_EXPECTATION, OUTPUT_LANDMARKS, OUTPUT_PROBS
from edgeface.cli import main
from edgeface.labels import AGE, attractiveness_space, expectation
from edgeface.models import create_model, list_models
from edgeface.models.dmmcnn import CELEBA_ATTRIBUTES, SUBJECTIVE_ATTRIBUTES, split_groups
from edgeface.models.profile import count_macs, count_params


@pytest.mark.parametrize(
    ("name", "params", "gmacs"),
    [("thinagenet", 3_708_229, 3.86), ("tinyagenet", 934_869, 0.98)],
)
def test_paper_parameter_and_mac_counts(name, params, gmacs):
    model = create_model(name)
    assert count_params(model) == params
    assert count_macs(model, 224) / 1e9 == pytest.approx(gmacs, abs=0.005)


def test_vgg16_baseline_is_134_6m():
    assert count_params(create_model("vgg16-dldl")) / 1e6 == pytest.approx(134.6, abs=0.2)


def test_registry_lists_all_and_rejects_unknown():
    assert {"thinagenet", "tinyagenet", "vgg16-dldl", "dmmcnn"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet9000")


def test_label_distribution_outputs_and_expectation_in_graph():
    model = create_model("tinyagenet").eval()
    with torch.no_grad():
        probs, value = model(torch.randn(2, 3, 64, 64))  # global pooling: other sizes work
    assert probs.shape == (2, 101) and value.shape == (2,)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))
    torch.testing.assert_close(value.numpy(), expectation(probs.numpy(), AGE), rtol=1e-5, atol=1e-4)
    assert model.output_names == (OUTPUT_PROBS, OUTPUT_EXPECTATION)


def test_attractiveness_variant_uses_score_bins():
    space = attractiveness_space(1, 7)
    probs, value = create_model("thinagenet", label_space=space).eval()(torch.randn(1, 3, 64, 64))
    assert probs.shape == (1, 61)
    assert 1.0 <= float(value) <= 7.0


def test_dmmcnn_groups_cover_the_40_attributes_and_keep_dataset_order():
    objective, subjective = split_groups(CELEBA_ATTRIBUTES)
    assert len(objective) + len(subjective) == 40 and not set(objective) & set(subjective)
    assert set(CELEBA_ATTRIBUTES) >= SUBJECTIVE_ATTRIBUTES
    model = create_model("dmmcnn").eval()
    x = torch.randn(2, 3, 96, 96)
    out = model.forward_train(x)
    branch = torch.cat([model.objective(model.features(x)), model.subjective(model.features(x))], dim=1)
    torch.testing.assert_close(out["attr_logits"][:, subjective[0]], branch[:, len(objective)])
    torch.testing.assert_close(out["attr_logits"][:, objective[0]], branch[:, 0])
    probs, landmarks = model(x)
    assert probs.shape == (2, 40) and landmarks.shape == (2, 10)
    assert float(landmarks.min()) >= 0 and float(landmarks.max()) <= 1
    assert model.output_names == (OUTPUT_ATTRIBUTES, OUTPUT_LANDMARKS)


def test_models_cli_json_reports_baseline_ratio(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["thinagenet"]["params"] == 3_708_229
    assert rows["thinagenet"]["params_ratio_vs_baseline"] >= 36
    for r in rows.values():
        assert {"name", "params", "macs", "input_size", "fp32_mib", "params_ratio_vs_baseline"} <= set(r)
