"""``appliance bench enhance`` reports every shipped precision at the issue's two sizes."""

from __future__ import annotations

from appliance.enhance.bench import bench_enhance, format_enhance
from appliance.runtime.bundle import factory_bundle_dir, load_manifest, model_file


def test_bench_enhance_covers_sizes_and_precisions() -> None:
    result = bench_enhance(runs=1)
    manifest = load_manifest(factory_bundle_dir() / "sr_x2")
    shipped = {p for p in ("fp32", "int8") if model_file(manifest, p)}
    assert set(result["ms"]) == {"256x256 -> 512x512", "640x360 -> 1280x720"}
    for by_precision in result["ms"].values():
        assert set(by_precision) == shipped and all(ms > 0 for ms in by_precision.values())
    text = format_enhance(result)
    assert "256x256 -> 512x512" in text
    assert ("INT8 not shipped" in text) == ("int8" not in shipped)
