"""Human review page (127.0.0.1, escaped, decisions file read on rerun)."""

import json
import threading

import httpx
import pandas as pd
import pyarrow.parquet as pq

from letitwag.builders.curate import CurateConfig, curate
from letitwag.builders.curate.review import ReviewServer


def test_review_page_saves_decisions_that_the_next_run_applies(tmp_path, image_tools):
    candidates = tmp_path / "candidates"
    candidates.mkdir()
    concept = "<script>alert(1)</script>"
    rows = [{"candidate_id": f"x/{i}", "concept_id": concept, "data": image_tools.encode(image_tools.smooth_image(i))} for i in range(4)]
    image_tools.build_candidates(candidates, rows)
    out, decisions = tmp_path / "out", tmp_path / "review.json"
    curate(candidates, out, CurateConfig(balance=False, workers=1, review_file=str(decisions)))
    table = pq.read_table(out / "curated.parquet").to_pandas()
    assert table["kept"].all()  # no decisions file yet: nothing rejected

    frame = table.assign(image_path=[r["path"] for r in table["image"]]).set_index(pd.RangeIndex(len(table)))
    server = ReviewServer(frame, out, decisions, port=0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        page = httpx.get(base + "/").text
        assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        image = httpx.get(base + "/image/0")
        assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
        assert httpx.get(base + "/image/../../etc/passwd").status_code == 404
        assert httpx.get(base + "/image/99").status_code == 404
        saved = httpx.post(base + "/save", data={"reject": ["x/1", "x/3", "unknown"]})
        assert saved.status_code == 303 and saved.headers["location"] == "/"  # back to the page
        assert json.loads(decisions.read_text())["rejected"] == {"x/1": "rejected in review", "x/3": "rejected in review"}
        assert 'value="x/1" checked' in httpx.get(base + "/").text.replace("'", '"')
        finisher = threading.Thread(target=lambda: httpx.post(base + "/finish", data={"reject": ["x/1"]}))
        finisher.start()
        assert server.finished.wait(10)
        finisher.join()
    finally:
        server.stop()
    assert json.loads(decisions.read_text())["rejected"] == {"x/1": "rejected in review"}

    curate(candidates, out, CurateConfig(balance=False, workers=1, review_file=str(decisions)))
    table = pq.read_table(out / "curated.parquet").to_pandas()
    rejected = table[~table["kept"]]
    assert rejected["candidate_id"].tolist() == ["x/1"]
    assert rejected["rejected_by"].tolist() == ["review"]
    assert "<script>" not in (out / "report.html").read_text()
