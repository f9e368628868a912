"""A co-op manager lists products: create, photos, SKUs, stock, list and delist, and bad input."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from market.catalog.models import Product, ProductImage, ProductStatus, Sku
from market.directory.models import Coop
from market.extensions import db
from tests.factories import image_bytes


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _new_product_form(world, **overrides):
    data = {
        "coop_id": world.coop,
        "name": "古丁高山红薯",
        "category_id": world.herbs,
        "description": "山地沙壤土种植",
        "origin_story": "海拔600米",
        "season_months": ["10", "11", "12"],
        "shelf_life_days": "30",
        "spec": "5斤装",
        "price": "39.9",
        "stock": "100",
        "weight_g": "2500",
    }
    data.update(overrides)
    return data


def test_my_products_lists_only_my_coops_products(client_as, world):
    page = client_as("coop_manager").get("/coop/products").get_data(as_text=True)
    assert "原生态蜂蜜" in page and "益智（草稿）" in page
    assert "白糖罂荔枝" not in page and "三华李（草稿）" not in page


def test_create_a_product_with_photos_as_a_draft_then_list_it(app, client_as, world):
    manager = client_as("coop_manager")
    data = _new_product_form(world)
    data["images"] = [
        (io.BytesIO(image_bytes("JPEG", (2000, 1000))), "a.jpg"),
        (io.BytesIO(image_bytes("WEBP")), "b.webp"),
    ]
    response = manager.post("/coop/products/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        product = db.session.scalar(select(Product).where(Product.name == "古丁高山红薯"))
        assert product.status == ProductStatus.DRAFT
        assert product.season_months == [10, 11, 12]
        assert [(s.spec, s.price_fen, s.stock, s.weight_g) for s in product.skus] == [
            ("5斤装", 3990, 100, 2500)
        ]
        assert len(product.images) == 2
        big = product.images[0]
        assert (big.width, big.height) == (1600, 800)  # shrunk to the display size
        product_id = product.id
        upload_dir = app.config["UPLOAD_DIR"]
    from pathlib import Path

    assert (Path(upload_dir) / big.thumb_path).exists()
    assert client_as("buyer").get(f"/products/{product_id}").status_code == 404
    response = manager.post(f"/coop/products/{product_id}/status", data={"status": "listed"})
    assert response.status_code == 302
    page = client_as("buyer").get(f"/products/{product_id}").get_data(as_text=True)
    assert "古丁高山红薯" in page and "¥39.90" in page and "/media/" in page
    assert "古丁高山红薯" in client_as("buyer").get("/products?q=红薯").get_data(as_text=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"price": "-5"}, "请输入正确的金额"),
        ({"price": "abc"}, "请输入正确的金额"),
        ({"price": "0"}, "金额必须大于 0"),
        ({"price": ""}, ""),
        ({"name": ""}, ""),
        ({"stock": "-1"}, ""),
        ({"stock": "abc"}, ""),
        ({"stock": "1000000000"}, ""),
        ({"category_id": "999"}, ""),
    ],
)
def test_bad_product_input_is_a_form_error_and_saves_nothing(
    app, client_as, world, overrides, message
):
    before = _count(app, Product)
    response = client_as("coop_manager").post(
        "/coop/products/new", data=_new_product_form(world, **overrides)
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "invalid-feedback" in body
    assert message in body
    assert _count(app, Product) == before


def _post_with_image(client, world, payload: bytes, filename: str):
    data = _new_product_form(world)
    data["images"] = [(io.BytesIO(payload), filename)]
    return client.post("/coop/products/new", data=data, content_type="multipart/form-data")


def test_a_10mb_image_is_refused(app, client_as, world):
    huge = image_bytes("PNG") + b"\x00" * (10 * 1024 * 1024)
    response = _post_with_image(client_as("coop_manager"), world, huge, "huge.png")
    assert response.status_code == 400
    assert "图片不能超过 5 MB" in response.get_data(as_text=True)
    assert _count(app, Product) == 5
    assert _count(app, ProductImage) == 0


def test_an_executable_renamed_jpg_is_refused(app, client_as, world):
    fake = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 1000  # a Windows executable's start
    response = _post_with_image(client_as("coop_manager"), world, fake, "photo.jpg")
    assert response.status_code == 400
    assert "文件不是有效的图片" in response.get_data(as_text=True)
    assert _count(app, Product) == 5


def test_a_gif_is_not_accepted(app, client_as, world):
    response = _post_with_image(client_as("coop_manager"), world, image_bytes("GIF"), "a.jpg")
    assert response.status_code == 400
    assert "只接受 JPEG、PNG、WebP" in response.get_data(as_text=True)


def _stored_files(app) -> set:
    from pathlib import Path

    return {p for p in Path(app.config["UPLOAD_DIR"]).rglob("*") if p.is_file()}


def test_a_bad_photo_among_good_ones_leaves_no_files(app, client_as, world):
    before = _stored_files(app)
    data = _new_product_form(world)
    data["images"] = [
        (io.BytesIO(image_bytes("JPEG")), "good.jpg"),
        (io.BytesIO(b"not an image"), "bad.jpg"),
    ]
    response = client_as("coop_manager").post(
        "/coop/products/new", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert _stored_files(app) == before
    assert _count(app, ProductImage) == 0


def test_edit_a_product_and_add_a_sku(app, client_as, world):
    manager = client_as("coop_manager")
    edit = manager.get(f"/coop/products/{world.honey_product}/edit")
    assert edit.status_code == 200 and "原生态蜂蜜" in edit.get_data(as_text=True)
    # No free-text 认证 any more: certificates are uploaded and verified (issue 16).
    assert 'name="certifications"' not in edit.get_data(as_text=True)
    assert 'href="/coop/certificates"' in edit.get_data(as_text=True)
    response = manager.post(
        f"/coop/products/{world.honey_product}/edit",
        data={"name": "古丁原生态蜂蜜", "category_id": world.honey},
    )
    assert response.status_code == 302
    response = manager.post(
        f"/coop/products/{world.honey_product}/skus",
        data={"spec": "1kg礼盒", "price": "168", "stock": "20"},
    )
    assert response.status_code == 302
    with app.app_context():
        product = db.session.get(Product, world.honey_product)
        assert product.name == "古丁原生态蜂蜜"
        assert product.coop_id == world.coop
        assert [(s.spec, s.price_fen) for s in product.skus] == [("500g", 8800), ("1kg礼盒", 16800)]


def test_change_a_sku_price(app, client_as, world):
    with app.app_context():
        sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == world.honey_product))
    response = client_as("coop_manager").post(
        f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "92.5", "active": "y"}
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Sku, sku_id).price_fen == 9250


def test_the_last_sku_of_a_listed_product_stays_on_sale(app, client_as, world):
    with app.app_context():
        sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == world.honey_product))
    response = client_as("coop_manager").post(
        f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "88"}
    )
    assert response.status_code == 400
    assert "至少要保留一个规格" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Sku, sku_id).active


def test_stock_goes_up_and_down_but_never_below_zero(app, client_as, world):
    manager = client_as("coop_manager")
    with app.app_context():
        sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == world.honey_product))
    assert manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": "25"}).status_code == 302
    assert manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": "-70"}).status_code == 302
    response = manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": "-6"})
    assert response.status_code == 400
    assert "当前库存 5" in response.get_data(as_text=True)
    for bad in ["abc", "", "0", "99999999999"]:
        assert manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": bad}).status_code == 400
    with app.app_context():
        assert db.session.get(Sku, sku_id).stock == 5


def test_status_follows_its_state_machine(app, client_as, world):
    manager = client_as("coop_manager")
    manager.post(f"/coop/products/{world.honey_product}/status", data={"status": "delisted"})
    with app.app_context():
        assert db.session.get(Product, world.honey_product).status == ProductStatus.DELISTED
    gone = client_as("buyer").get(f"/products/{world.honey_product}")
    assert gone.status_code == 410 and "已下架" in gone.get_data(as_text=True)
    # delisted -> delisted is not a transition: refused with a message, nothing changes
    response = manager.post(
        f"/coop/products/{world.honey_product}/status",
        data={"status": "delisted"},
        follow_redirects=True,
    )
    assert "商品当前为“已下架”，不能改为“已下架”" in response.get_data(as_text=True)
    manager.post(f"/coop/products/{world.honey_product}/status", data={"status": "listed"})
    with app.app_context():
        assert db.session.get(Product, world.honey_product).status == ProductStatus.LISTED


def test_an_unapproved_coop_cannot_list(app, client_as, world):
    with app.app_context():
        db.session.get(Coop, world.coop).approved = False
        db.session.commit()
    response = client_as("coop_manager").post(
        f"/coop/products/{world.draft}/status", data={"status": "listed"}, follow_redirects=True
    )
    assert "尚未通过审核" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Product, world.draft).status == ProductStatus.DRAFT


def test_delete_a_photo(app, client_as, world):
    manager = client_as("coop_manager")
    manager.post(
        f"/coop/products/{world.honey_product}/edit",
        data={
            "name": "原生态蜂蜜",
            "category_id": world.honey,
            "images": [(io.BytesIO(image_bytes()), "a.jpg")],
        },
        content_type="multipart/form-data",
    )
    with app.app_context():
        image_id = db.session.scalar(select(ProductImage.id))
    response = manager.post(f"/coop/products/{world.honey_product}/images/{image_id}/delete")
    assert response.status_code == 302
    assert _count(app, ProductImage) == 0


# -- someone else's products ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/coop/products/{other_draft}/edit", None),
        ("post", "/coop/products/{other_draft}/edit", {"name": "x", "category_id": "1"}),
        ("post", "/coop/products/{other_draft}/status", {"status": "listed"}),
        ("post", "/coop/products/{other_draft}/skus", {"spec": "x", "price": "1"}),
        ("post", "/coop/products/{lychee}/status", {"status": "delisted"}),
    ],
)
def test_another_coops_products_are_403(app, client_as, world, method, path, data):
    client = client_as("coop_manager")
    url = path.format(other_draft=world.other_draft, lychee=world.lychee)
    response = getattr(client, method)(url, data=data)
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(Product, world.other_draft).status == ProductStatus.DRAFT
        assert db.session.get(Product, world.other_draft).name == "三华李（草稿）"
        assert db.session.get(Product, world.lychee).status == ProductStatus.LISTED


def test_another_coops_sku_stock_is_403(app, client_as, world):
    with app.app_context():
        sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == world.lychee))
    response = client_as("coop_manager").post(f"/coop/skus/{sku_id}/stock", data={"delta": "-50"})
    assert response.status_code == 403
    with app.app_context():
        assert db.session.get(Sku, sku_id).stock == 50


def test_creating_for_another_coop_is_refused(app, client_as, world):
    response = client_as("coop_manager").post(
        "/coop/products/new", data=_new_product_form(world, coop_id=world.other_coop)
    )
    assert response.status_code == 400  # not among the form's choices
    assert "不是有效的选择" in response.get_data(as_text=True)
    assert _count(app, Product) == 5


def test_missing_products_are_404(client_as, world):
    assert client_as("coop_manager").get("/coop/products/9999/edit").status_code == 404


# -- categories (organizer) ------------------------------------------------------------------
def test_organizer_adds_and_renames_a_category(app, client_as, world):
    organizer = client_as("organizer")
    response = organizer.post(
        "/admin/categories/new", data={"name": "礼盒", "slug": "giftbox", "sort_order": "9"}
    )
    assert response.status_code == 302
    response = organizer.post(
        f"/admin/categories/{world.honey}/edit", data={"name": "蜂产品", "slug": "honey"}
    )
    assert response.status_code == 302
    page = organizer.get("/admin/categories").get_data(as_text=True)
    assert "礼盒" in page and "蜂产品" in page
    assert "蜂产品" in client_as("buyer").get("/").get_data(as_text=True)


def test_category_slugs_are_checked_and_unique(app, client_as, world):
    from market.catalog.models import Category

    organizer = client_as("organizer")
    bad = organizer.post("/admin/categories/new", data={"name": "鲜果", "slug": "Fresh Fruit"})
    assert bad.status_code == 400
    taken = organizer.post("/admin/categories/new", data={"name": "鲜果", "slug": "fruit"})
    assert taken.status_code == 400
    assert "已有同名或同代码的分类" in taken.get_data(as_text=True)
    assert _count(app, Category) == 3
