"""The organizer's directory: pages, the pairing rule, the roster import; public village pages."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import func, select

from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.directory.services import max_concurrent
from market.extensions import db
from tests.factories import image_bytes

HEADER = "unit,town,village,since,until,note\n"


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _upload(client, text: str, encoding: str = "utf-8"):
    return client.post(
        "/admin/pairings/import",
        data={"roster": (io.BytesIO(text.encode(encoding)), "roster.csv")},
        content_type="multipart/form-data",
    )


# -- the organizer's pages -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/admin/directory",
        "/admin/towns",
        "/admin/villages",
        "/admin/coops",
        "/admin/units",
        "/admin/pairings",
        "/admin/towns/new",
        "/admin/villages/new",
        "/admin/coops/new",
        "/admin/units/new",
        "/admin/pairings/new",
    ],
)
def test_organizer_pages_show(client_as, world, path):
    response = client_as("organizer").get(path)
    assert response.status_code == 200
    assert "名录管理" in response.get_data(as_text=True)


def test_lists_show_the_directory(client_as, world):
    organizer = client_as("organizer")
    assert "古丁村" in organizer.get("/admin/villages").get_data(as_text=True)
    units = organizer.get("/admin/units").get_data(as_text=True)
    assert "高州市市场监管局" in units
    pairings = organizer.get("/admin/pairings").get_data(as_text=True)
    assert "高州市委办" in pairings and "柏桥村" in pairings


def test_organizer_creates_and_edits_a_village_with_a_photo(app, client_as, world):
    organizer = client_as("organizer")
    response = organizer.post(
        "/admin/villages/new",
        data={
            "town_id": world.town,
            "name": "新村",
            "is_typical": "y",
            "story": "种红薯的村",
            "photo": (io.BytesIO(image_bytes("PNG")), "village.png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    with app.app_context():
        village = db.session.scalar(select(Village).where(Village.name == "新村"))
        assert village.is_typical and village.photo_path.endswith(".png")
        village_id = village.id
    page = client_as("buyer").get(f"/villages/{village_id}").get_data(as_text=True)
    assert "种红薯的村" in page and "典型村" in page
    response = organizer.post(
        f"/admin/villages/{village_id}/edit",
        data={"town_id": world.town, "name": "新村", "story": "改了故事"},
    )
    assert response.status_code == 302
    with app.app_context():
        village = db.session.get(Village, village_id)
        assert village.story == "改了故事" and not village.is_typical
        assert village.photo_path  # no new photo keeps the old one


def test_a_village_name_is_unique_in_its_town(app, client_as, world):
    response = client_as("organizer").post(
        "/admin/villages/new", data={"town_id": world.town, "name": "古丁村"}
    )
    assert response.status_code == 400
    assert "该镇已有同名的村" in response.get_data(as_text=True)
    assert _count(app, Village) == 2


def test_a_village_photo_must_really_be_an_image(app, client_as, world):
    response = client_as("organizer").post(
        "/admin/villages/new",
        data={
            "town_id": world.town,
            "name": "假图村",
            "photo": (io.BytesIO(b"MZ\x90\x00" + b"\x00" * 200), "photo.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "不是有效的图片" in response.get_data(as_text=True)
    assert _count(app, Village) == 2


def test_organizer_creates_town_unit_and_coop(app, client_as, world):
    organizer = client_as("organizer")
    assert organizer.post("/admin/towns/new", data={"name": "分界镇"}).status_code == 302
    assert organizer.post("/admin/units/new", data={"name": "高州市农业农村局"}).status_code == 302
    response = organizer.post(
        "/admin/coops/new",
        data={"village_id": world.village, "name": "古丁蜂蜜合作社", "approved": "y"},
    )
    assert response.status_code == 302
    with app.app_context():
        unit = db.session.scalar(select(Unit).where(Unit.name == "高州市农业农村局"))
        assert len(unit.invite_code) == 8 and unit.invite_code != unit.referral_code
        assert db.session.scalar(select(Coop).where(Coop.name == "古丁蜂蜜合作社")).approved
    assert _count(app, Town) == 3


def test_empty_names_are_form_errors(app, client_as, world):
    organizer = client_as("organizer")
    for path in ["/admin/towns/new", "/admin/units/new"]:
        response = organizer.post(path, data={"name": ""})
        assert response.status_code == 400
    assert _count(app, Unit) == 2


def test_organizer_adds_and_ends_a_pairing(app, client_as, world):
    organizer = client_as("organizer")
    response = organizer.post(
        "/admin/pairings/new",
        data={"unit_id": world.other_unit, "village_id": world.village, "since": "2025-01-01"},
    )
    assert response.status_code == 302
    with app.app_context():
        pairing = db.session.scalar(
            select(Pairing).where(
                Pairing.unit_id == world.other_unit, Pairing.village_id == world.village
            )
        )
        pairing_id = pairing.id
    response = organizer.post(
        f"/admin/pairings/{pairing_id}/edit",
        data={
            "unit_id": world.other_unit,
            "village_id": world.village,
            "since": "2025-01-01",
            "until": "2025-12-31",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Pairing, pairing_id).until == date(2025, 12, 31)


def test_a_pairing_cannot_end_before_it_starts(app, client_as, world):
    response = client_as("organizer").post(
        "/admin/pairings/new",
        data={
            "unit_id": world.other_unit,
            "village_id": world.village,
            "since": "2025-01-01",
            "until": "2024-01-01",
        },
    )
    assert response.status_code == 400
    assert "结束日期不能早于开始日期" in response.get_data(as_text=True)
    assert _count(app, Pairing) == 2


def test_a_village_has_at_most_two_units_at_once(app, client_as, world):
    organizer = client_as("organizer")
    third = {"name": "第三个单位"}
    organizer.post("/admin/units/new", data=third)
    with app.app_context():
        third_id = db.session.scalar(select(Unit.id).where(Unit.name == "第三个单位"))
    ok = organizer.post(
        "/admin/pairings/new",
        data={"unit_id": world.other_unit, "village_id": world.village, "since": "2024-09-03"},
    )
    assert ok.status_code == 302
    refused = organizer.post(
        "/admin/pairings/new",
        data={"unit_id": third_id, "village_id": world.village, "since": "2025-03-01"},
    )
    assert refused.status_code == 400
    assert "同时结对的单位超过 2 个" in refused.get_data(as_text=True)
    assert _count(app, Pairing) == 3


def test_max_concurrent_counts_overlapping_spans():
    spans = [
        (date(2023, 1, 1), date(2023, 12, 31)),
        (date(2024, 1, 1), None),
        (date(2024, 6, 1), None),
    ]
    assert max_concurrent(spans) == 2
    assert max_concurrent([*spans, (date(2023, 6, 1), date(2024, 6, 1))]) == 3
    assert max_concurrent([]) == 0


# -- roster import -----------------------------------------------------------------------------
def test_the_real_roster_imports(app, client_as, world, shared_data):
    organizer = client_as("organizer")
    with app.app_context():
        for name in ["马贵镇", "曹江镇", "深镇镇", "宝光街道"]:
            db.session.add(Town(name=name))
        db.session.commit()
    response = _upload(organizer, (shared_data / "pairings.csv").read_text(encoding="utf-8"))
    assert response.status_code == 302
    page = organizer.get("/admin/pairings").get_data(as_text=True)
    # Two of the nine (市场监管局–古丁村, 市委办–柏桥村) are already in the test world.
    assert "新增结对 7 条" in page and "未变 2 条" in page
    with app.app_context():
        forestry = db.session.scalar(select(Unit).where(Unit.name == "高州市林业局"))
        spans = sorted((p.village.name, p.since, p.until) for p in forestry.pairings)
        assert spans == [
            ("帅堂村", date(2023, 9, 1), date(2024, 9, 2)),
            ("荷垌村", date(2024, 9, 3), None),
        ]
    # The same roster again changes nothing.
    before = _count(app, Pairing)
    response = _upload(organizer, (shared_data / "pairings.csv").read_text(encoding="utf-8"))
    assert response.status_code == 302
    assert _count(app, Pairing) == before


def test_a_roster_with_a_missing_column_imports_nothing(app, client_as, world):
    response = _upload(
        client_as("organizer"), "unit,town,village,since\n高州市委办,古丁镇,古丁村,2024-09-03\n"
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "第 1 行" in body and "缺少列" in body and "until" in body
    assert _count(app, Pairing) == 2


def test_every_bad_line_is_reported_and_nothing_is_imported(app, client_as, world):
    roster = HEADER + (
        "新单位甲,古丁镇,古丁村,2024-09-03,,\n"  # line 2: fine
        "新单位乙,不存在镇,某村,2024-09-03,,\n"  # line 3: unknown town
        "新单位丙,古丁镇,古丁村,2024-13-40,,\n"  # line 4: bad date
        ",古丁镇,古丁村,2024-09-03,,\n"  # line 5: no unit
        "新单位丁,根子镇,柏桥村,2024-09-03,2024-01-01,\n"  # line 6: ends before start
    )
    response = _upload(client_as("organizer"), roster)
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    for line, words in [
        (3, "未知的镇（街道）：不存在镇"),
        (4, "开始日期格式"),
        (5, "unit 为空"),
        (6, "结束日期早于开始日期"),
    ]:
        assert f"第 {line} 行" in body and words in body
    assert "第 2 行" not in body
    assert _count(app, Pairing) == 2
    assert _count(app, Unit) == 2


def test_a_roster_breaking_the_pairing_rule_imports_nothing(app, client_as, world):
    roster = HEADER + ("甲单位,古丁镇,古丁村,2024-09-03,,\n乙单位,古丁镇,古丁村,2024-09-03,,\n")
    response = _upload(client_as("organizer"), roster)
    assert response.status_code == 400
    assert "同时结对的单位超过 2 个" in response.get_data(as_text=True)
    assert _count(app, Pairing) == 2
    assert _count(app, Unit) == 2


def test_a_gb18030_roster_from_excel_is_read(app, client_as, world):
    roster = HEADER + "高州市农业农村局,古丁镇,新的村,2024-09-03,,\n"
    response = _upload(client_as("organizer"), roster, encoding="gb18030")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Village).where(Village.name == "新的村")) is not None


def test_import_without_a_file_is_a_message(app, client_as, world):
    organizer = client_as("organizer")
    response = organizer.post("/admin/pairings/import", data={}, follow_redirects=True)
    assert "请选择 CSV 文件" in response.get_data(as_text=True)
    assert _count(app, Pairing) == 2


# -- public pages -----------------------------------------------------------------------------
def test_village_page_shows_story_coops_products_and_units(client, world):
    page = client.get(f"/villages/{world.village}").get_data(as_text=True)
    for text in ["古丁村", "南药之乡", "古丁南药合作社", "原生态蜂蜜", "高州市市场监管局"]:
        assert text in page
    assert "益智（草稿）" not in page
    assert "高州市委办" not in page


def test_village_list_groups_by_town(client, world):
    page = client.get("/villages").get_data(as_text=True)
    assert page.index("古丁镇") < page.index("古丁村")
    assert "柏桥村" in page


def test_unknown_village_is_404(client, world):
    assert client.get("/villages/9999").status_code == 404
