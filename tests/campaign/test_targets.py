"""Unit targets: one by one, a default for every unit, and an uploaded XLSX/CSV sheet that is
applied whole or not at all, every bad line named."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from market.campaign.models import UnitTarget
from market.campaign.targets import parse_target_yuan
from market.directory.models import Unit
from market.extensions import db


def _targets(app, campaign_id: int) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(Unit.name, UnitTarget.amount_fen)
            .join(UnitTarget, UnitTarget.unit_id == Unit.id)
            .where(UnitTarget.campaign_id == campaign_id)
        )
        return dict(rows.all())


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("50000", 5_000_000),
        ("50,000.5", 5_000_050),
        ("¥1234.56", 123_456),
        ("￥50，000元", 5_000_000),  # as typed on a Chinese keyboard
        ("0", 0),
        (30000, 3_000_000),
        (30000.0, 3_000_000),
        (1234.5, 123_450),
        ("2万", None),
        ("-5", None),
        ("1.234", None),
        ("", None),
        (True, None),
        ("100000000", None),  # ¥100,000,000: more than any target
    ],
)
def test_parse_target_yuan(text, fen):
    if fen is None:
        with pytest.raises(ValueError):
            parse_target_yuan(text)
    else:
        assert parse_target_yuan(text) == fen


def test_set_a_units_target_and_remove_it(app, client_as, world, campaign):
    organizer = client_as("organizer")
    url = f"/admin/campaigns/{campaign.id}/targets"
    response = organizer.post(url, data={"unit_id": world.unit, "amount": "30000"})
    assert response.status_code == 303
    assert _targets(app, campaign.id) == {"高州市市场监管局": 3_000_000}
    organizer.post(url, data={"unit_id": world.unit, "amount": "35000.50"})
    assert _targets(app, campaign.id) == {"高州市市场监管局": 3_500_050}
    page = organizer.get(url).get_data(as_text=True)
    assert "¥35,000.50" in page and "已设定目标的单位：1 / 2" in page
    organizer.post(url, data={"unit_id": world.unit, "amount": ""})
    assert _targets(app, campaign.id) == {}


def test_a_bad_target_is_refused_next_to_the_field(app, client_as, world, campaign):
    response = client_as("organizer").post(
        f"/admin/campaigns/{campaign.id}/targets", data={"unit_id": world.unit, "amount": "三万"}
    )
    assert response.status_code == 400
    assert "目标金额应为最多两位小数的元数" in response.get_data(as_text=True)
    assert _targets(app, campaign.id) == {}


def test_a_default_target_fills_units_without_one_or_replaces_all(app, client_as, world, campaign):
    organizer = client_as("organizer")
    base = f"/admin/campaigns/{campaign.id}/targets"
    organizer.post(base, data={"unit_id": world.unit, "amount": "30000"})
    response = organizer.post(f"{base}/default", data={"amount": "20000"})
    assert response.status_code == 303
    assert _targets(app, campaign.id) == {"高州市市场监管局": 3_000_000, "高州市委办": 2_000_000}
    organizer.post(f"{base}/default", data={"amount": "10000", "replace_existing": "y"})
    assert _targets(app, campaign.id) == {"高州市市场监管局": 1_000_000, "高州市委办": 1_000_000}
    response = organizer.post(f"{base}/default", data={"amount": ""})
    assert response.status_code == 400


def _upload(client, campaign_id: int, content: bytes, name: str):
    return client.post(
        f"/admin/campaigns/{campaign_id}/targets/import",
        data={"sheet": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def _xlsx(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_upload_a_csv_with_a_header(app, client_as, world, campaign):
    organizer = client_as("organizer")
    organizer.post(
        f"/admin/campaigns/{campaign.id}/targets", data={"unit_id": world.unit, "amount": "1"}
    )
    content = '单位名称,目标（元）\n高州市市场监管局,50000\n高州市委办,"42,000.50"\n'.encode()
    response = _upload(organizer, campaign.id, b"\xef\xbb\xbf" + content, "targets.csv")
    assert response.status_code == 303
    assert _targets(app, campaign.id) == {"高州市市场监管局": 5_000_000, "高州市委办": 4_200_050}
    flashed = organizer.get(f"/admin/campaigns/{campaign.id}/targets").get_data(as_text=True)
    assert "新增目标 1 个，修改 1 个，未变 0 个" in flashed


def test_upload_a_gb18030_csv_without_a_header(app, client_as, world, campaign):
    content = "高州市委办,8000\n".encode("gb18030")
    response = _upload(client_as("organizer"), campaign.id, content, "targets.csv")
    assert response.status_code == 303
    assert _targets(app, campaign.id) == {"高州市委办": 800_000}


def test_a_bad_first_row_without_a_header_is_reported_not_skipped(app, client_as, world, campaign):
    content = "高州市委办,很多\n高州市市场监管局,100\n".encode()
    response = _upload(client_as("organizer"), campaign.id, content, "targets.csv")
    assert response.status_code == 400
    assert "<td>第 1 行</td><td>目标金额应为最多两位小数的元数" in response.get_data(as_text=True)
    assert _targets(app, campaign.id) == {}


def test_upload_an_xlsx(app, client_as, world, campaign):
    content = _xlsx([["单位", "目标（元）"], ["高州市市场监管局", 60000], ["高州市委办", 1234.5]])
    response = _upload(client_as("organizer"), campaign.id, content, "目标.xlsx")
    assert response.status_code == 303
    assert _targets(app, campaign.id) == {"高州市市场监管局": 6_000_000, "高州市委办": 123_450}


def test_every_bad_row_is_reported_by_line_and_nothing_is_applied(app, client_as, world, campaign):
    content = _xlsx(
        [
            ["单位", "目标（元）"],
            ["高州市市场监管局", 60000],
            ["高州市不存在局", 100],
            ["高州市委办", "很多"],
            [None, None],
            ["高州市市场监管局", 5],
            ["高州市委办", -3],
            ["高州市委办", 10, "多余"],
            [None, 50],
        ]
    )
    response = _upload(client_as("organizer"), campaign.id, content, "targets.xlsx")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "目标表中有 6 行有误，未导入任何内容" in page
    for line, problem in [
        (3, "未知的单位：高州市不存在局"),
        (4, "目标金额应为最多两位小数的元数"),
        (6, "与第 2 行重复"),
        (7, "目标金额不能为负数"),
        (8, "多于两列"),
        (9, "单位名称为空"),
    ]:
        assert f"<td>第 {line} 行</td><td>{problem}" in page, (line, problem)
    assert "第 2 行" not in page.replace("与第 2 行重复", "")
    assert _targets(app, campaign.id) == {}


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.csv", "目标表是空的"),
        (b"\xff\xfe\x00garbage", "targets.csv", "文件编码无法识别"),
        (b"PK\x03\x04not really a zip", "targets.xlsx", "无法读取该 Excel 文件"),
        (b"name,amount\n", "targets.csv", "目标表是空的"),
        (b"x", "targets.pdf", "只支持 XLSX 或 CSV 文件"),
    ],
)
def test_unreadable_uploads_are_refused(app, client_as, world, campaign, content, name, message):
    response = _upload(client_as("organizer"), campaign.id, content, name)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _targets(app, campaign.id) == {}


def test_an_upload_without_a_file_is_refused(app, client_as, world, campaign):
    response = client_as("organizer").post(
        f"/admin/campaigns/{campaign.id}/targets/import",
        data={},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "请选择文件" in response.get_data(as_text=True)


def test_only_organizers_set_targets(client_as, world, campaign):
    for role in ("coordinator", "coop_manager", "employee"):
        response = client_as(role).post(
            f"/admin/campaigns/{campaign.id}/targets", data={"unit_id": world.unit, "amount": "1"}
        )
        assert response.status_code == 403
