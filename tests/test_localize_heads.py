"""Camera encoders, attention splitter and text projection against direct computations of the spec."""

import torch

from ivlm_core.localize.heads import (
    AddCameraEncoder,
    AttentionSplitter,
    GateCameraEncoder,
    ViewIndexCameraEncoder,
    text_hidden_fcs,
)
from ivlm_core.render.views import HUMAN_VIEWS


def _randomise(module: torch.nn.Module) -> None:
    torch.manual_seed(3)
    for p in module.parameters():
        p.data.normal_(0, 0.5)


def test_vi_v1_gate_is_a_per_view_sigmoid_product():
    enc = GateCameraEncoder(num_views=4, out_dim=8)
    _randomise(enc)
    cams = torch.tensor(HUMAN_VIEWS.camera_vectors())
    emb = torch.randn(1, 4, 8)
    out = enc(emb, cams)
    s = enc.spatial_encoder
    for v in range(4):
        base = torch.relu(s[2].weight @ torch.relu(s[0].weight @ cams[v] + s[0].bias) + s[2].bias)
        gate = torch.sigmoid(enc.view_transforms[v].weight @ base + enc.view_transforms[v].bias)
        assert torch.allclose(out[0, v], emb[0, v] * gate, atol=1e-6)
    assert [k for k in enc.state_dict()][:2] == ["spatial_encoder.0.weight", "spatial_encoder.0.bias"]


def test_view_index_encoder_multiplies_without_final_sigmoid():
    enc = ViewIndexCameraEncoder(num_views=4, out_dim=8)
    _randomise(enc)
    cams = torch.rand(4, 5)
    emb = torch.randn(2, 4, 8)
    out = enc(emb, cams)
    s = enc.spatial_encoder
    for v in range(4):
        base = torch.sigmoid(s[2].weight @ torch.relu(s[0].weight @ cams[v] + s[0].bias) + s[2].bias)
        scale = enc.view_transforms[v].weight @ base + enc.view_transforms[v].bias
        assert torch.allclose(out[:, v], emb[:, v] * scale, atol=1e-6)


def test_simple_encoder_adds():
    enc = AddCameraEncoder(out_dim=8)
    _randomise(enc)
    cams, emb = torch.rand(4, 5), torch.randn(1, 4, 8)
    expected = emb + torch.relu(cams @ enc.linear1.weight.T + enc.linear1.bias)
    assert torch.allclose(enc(emb, cams), expected, atol=1e-6)


def test_attention_splitter_by_hand():
    split = AttentionSplitter(dim=8, hidden=6)
    _randomise(split)
    x = torch.randn(1, 4, 8)
    proj = x @ split.input_proj.weight.T + split.input_proj.bias
    keys = proj @ split.key.weight.T + split.key.bias
    values = proj @ split.value.weight.T + split.value.bias
    for branch, query_layer in (("human", split.query_human), ("object", split.query_object)):
        query = proj @ query_layer.weight.T + query_layer.bias
        weights = torch.softmax(query @ keys.transpose(1, 2) / 6**0.5, dim=-1)
        expected = (weights @ values) @ split.output_proj.weight.T + split.output_proj.bias
        assert torch.allclose(split(x, branch), expected, atol=1e-6)
    assert not torch.allclose(split(x, "human"), split(x, "object"))


def test_text_hidden_fcs_keys_match_the_release():
    fcs = torch.nn.ModuleList([text_hidden_fcs(16, 8)])
    assert sorted(fcs.state_dict()) == ["0.0.bias", "0.0.weight", "0.2.bias", "0.2.weight"]
