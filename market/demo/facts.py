"""The demo data's tables: its accounts, the real villages' stories and co-ops, the towns that host
the generated villages, the categories and the search synonyms. What is real comes from shared/data
(pairings.csv and its README); what is generated is marked 示例."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from market.accounts.models import CoopRole, UnitRole

DEMO_PASSWORD = "demo-pass-2026"
ORGANIZER_EMAIL = "organizer@example.com"

# The programme pairs 108 city-level units with 54 key villages (see shared/data/README.md).
TOTAL_UNITS = 108
TOTAL_VILLAGES = 54
# The kick-off meeting of the current round (9月3日; the year is assumed, as in the README).
ROUND_START = date(2024, 9, 3)

GENERATED_NOTE = "示例数据"
DEMO_UNIT_NAME = "高州市市场监管局"
# The village whose first co-op the demo co-op manager runs (its products come from products.csv).
DEMO_COOP_VILLAGE = "古丁村"
# That co-op's name, as REAL_COOPS lists it first for the village and seed-demo prints it.
DEMO_COOP_NAME = "高州市古丁南药种植专业合作社"


# -- accounts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoAccount:
    email: str
    name: str
    phone: str
    description: str
    is_organizer: bool = False
    is_admin: bool = False
    is_finance: bool = False
    unit_role: UnitRole | None = None
    coop_role: CoopRole | None = None


ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        ORGANIZER_EMAIL,
        "市直机关工委 张组织",
        "13800000001",
        "活动组织方（市直机关工委）：维护单位、村和结对，设定目标，查看看板和导出",
        is_organizer=True,
    ),
    DemoAccount(
        "finance@example.com",
        "消费帮扶服务中心 孙财务",
        "13800000009",
        "财务（消费帮扶服务中心）：确认到账、办理退款、出结算单并向合作社付款",
        is_finance=True,
    ),
    DemoAccount(
        "admin@example.com",
        "系统管理员 李管理",
        "13800000002",
        "系统管理员，兼活动组织方",
        is_organizer=True,
        is_admin=True,
    ),
    DemoAccount(
        "coordinator@example.com",
        "王联络",
        "13800000003",
        f"单位联络员（{DEMO_UNIT_NAME}）：发起团购、以买代帮、产品定制，管理成员",
        unit_role=UnitRole.COORDINATOR,
    ),
    DemoAccount(
        "approver@example.com",
        "陈审批",
        "13800000004",
        f"单位审批人（{DEMO_UNIT_NAME}）：审批单位采购",
        unit_role=UnitRole.APPROVER,
    ),
    DemoAccount(
        "employee@example.com",
        "刘职工",
        "13800000005",
        f"单位职工（{DEMO_UNIT_NAME}）：购买、参加团购",
        unit_role=UnitRole.MEMBER,
    ),
    DemoAccount(
        "coop@example.com",
        "黄社长",
        "13800000006",
        f"合作社管理员（{DEMO_COOP_NAME}）：上架商品、管理库存、发货",
        coop_role=CoopRole.MANAGER,
    ),
    DemoAccount(
        "buyer@example.com",
        "赵买家",
        "13800000007",
        "普通买家（未加入任何单位）",
    ),
)

DEMO_ACCOUNTS: list[tuple[str, str]] = [(a.email, a.description) for a in ACCOUNTS]


# -- directory facts -------------------------------------------------------------------------------
# Real 高州 towns that host the generated villages (none of the real villages is in them).
EXTRA_TOWNS = (
    "分界镇",
    "石鼓镇",
    "长坡镇",
    "平山镇",
    "大井镇",
    "沙田镇",
    "荷塘镇",
    "东岸镇",
    "云潭镇",
    "泗水镇",
)

# pairings.csv: "帅堂村 is a provincial first-batch 典型村"; 荷垌村 is only being cultivated as one.
TYPICAL_VILLAGES = frozenset({"帅堂村"})

# Stories say only what shared/data states; nothing more precise is known.
VILLAGE_STORIES = {
    "朗练村": "马贵镇朗练村是结对共建的村之一，自9月3日结对共建启动起由高州市政协结对帮扶。",
    "帅堂村": "曹江镇帅堂村是广东省首批典型村之一。上一轮结对共建中由高州市林业局结对帮扶。",
    "荷垌村": "曹江镇荷垌村正在培育成为典型村，同时参与佛山、茂名两地的佛茂协作。"
    "本轮由高州市林业局结对共建。",
    "耀新村": "深镇镇耀新村由高州市投资促进中心和茂名石化高州分公司两家单位共同结对共建。",
    "古丁村": "古丁镇古丁村出产藿香、益智等南药，还有高山红薯和原生态蜂蜜；"
    "村里传统的塘鱼有氹仔草鲩和活水塘鲺。本轮由高州市市场监管局结对共建。",
    "程村村": "宝光街道程村村是高州市委办自己选定的结对村。",
    "元坝村": "根子镇元坝村所在的根子镇以荔枝、龙眼闻名。本轮由高州市委办结对共建。",
    "柏桥村": "根子镇柏桥村所在的根子镇以荔枝、龙眼闻名。本轮由高州市委办结对共建。",
    "彭村村": "南塘镇彭村村以荷花为特色，发展“荷花经济”。",
}
GENERATED_VILLAGE_STORY = "示例数据：演示用的示例村，不对应真实的村庄。"

# Co-ops of the real villages. 古丁村 has two: its herbs co-op and a family farm for the pond fish.
REAL_COOPS: dict[str, tuple[tuple[str, str], ...]] = {
    "古丁村": (
        (
            DEMO_COOP_NAME,
            "组织村民种植、晾晒藿香和益智等南药，兼营高山红薯和原生态蜂蜜。",
        ),
        ("古丁村塘鱼养殖家庭农场", "养殖古丁村传统的塘鱼：氹仔草鲩和活水塘鲺，鲜活配送。"),
    ),
    "朗练村": (("高州市马贵朗练农产品专业合作社", "收购、加工和销售朗练村的农产品。"),),
    "帅堂村": (("高州市曹江帅堂种养专业合作社", "组织帅堂村的种植和养殖，统一分拣包装。"),),
    "荷垌村": (("高州市曹江荷垌农业专业合作社", "组织荷垌村的种植，统一收购和销售。"),),
    "耀新村": (("高州市深镇耀新果蔬专业合作社", "收购和销售耀新村的水果、南药和番薯。"),),
    "程村村": (("高州市宝光程村农副产品专业合作社", "组合结对村的土特产，做成礼盒销售。"),),
    "元坝村": (("高州市根子元坝荔枝龙眼专业合作社", "组织元坝村荔枝、龙眼的采摘、预冷和发货。"),),
    "柏桥村": (("高州市根子柏桥水果专业合作社", "组织柏桥村荔枝、龙眼的采摘和加工。"),),
    "彭村村": (("高州市南塘彭村荷花专业合作社", "围绕荷花经济，销售莲子、莲藕和荷叶茶。"),),
}


# -- catalog facts ---------------------------------------------------------------------------------
CATEGORIES = (  # name, slug, sort order, the English UI's name
    ("水果", "fruit", 10, "Fruit"),
    ("薯类", "shu", 20, "Sweet potatoes & tubers"),
    ("蜂蜜", "honey", 30, "Honey"),
    ("南药", "herbs", 40, "Southern herbs"),
    ("水产", "fish", 50, "Fish & aquatic"),
    ("蔬菜", "veg", 60, "Vegetables"),
    ("粮油", "grain", 70, "Grain & oil"),
    ("加工品", "processed", 80, "Processed foods"),
    ("礼盒", "giftbox", 90, "Gift boxes"),
)

# Search synonyms (同义词): names people use for the same thing; the organizer keeps the list.
SYNONYM_GROUPS = (
    "红薯 番薯 地瓜 甘薯",
    "荔枝 妃子笑 桂味 糯米糍 白糖罂 黑叶",
    "龙眼 桂圆",
    "藿香 广藿香",
    "草鲩 草鱼 鲩鱼",
)

DEMO_TARGET_FEN = 2_000_000  # ¥20,000 per unit: a demo figure, not a published one
