"""Demo configuration for `make dev` and the tests: locations, channels, stock, API keys."""

from __future__ import annotations

from store import Store
from workflows.model import ApprovalReasonConfig, LocationConfig, SalesChannelConfig

LOCATIONS = [
    LocationConfig(
        location_id="WH-BERLIN",
        name="Berlin warehouse",
        type="warehouse",
        lat=52.52,
        lon=13.405,
        time_zone="Europe/Berlin",
        cutoff_time="15:00",
        daily_capacity=5000,
        priority=1,
        address_line1="Lagerstraße 12",
        postal_code="10115",
        city="Berlin",
        country="DE",
    ),
    LocationConfig(
        location_id="WH-MUNICH",
        name="Munich warehouse",
        type="warehouse",
        lat=48.137,
        lon=11.575,
        time_zone="Europe/Berlin",
        cutoff_time="16:00",
        lead_time_days=1,
        daily_capacity=3000,
        address_line1="Logistikring 4",
        postal_code="80331",
        city="München",
        country="DE",
    ),
    LocationConfig(
        location_id="ST-HAMBURG",
        name="Hamburg store",
        type="store",
        lat=53.551,
        lon=9.993,
        time_zone="Europe/Berlin",
        cutoff_time="12:00",
        daily_capacity=200,
        address_line1="Mönckebergstraße 7",
        postal_code="20095",
        city="Hamburg",
        country="DE",
    ),
    LocationConfig(
        location_id="WH-LONDON",
        name="London warehouse",
        type="warehouse",
        lat=51.507,
        lon=-0.128,
        time_zone="Europe/London",
        cutoff_time="14:00",
        lead_time_days=2,
        daily_capacity=4000,
        address_line1="Unit 3, Thames Wharf",
        postal_code="E16 2AA",
        city="London",
        country="GB",
    ),
]

CHANNELS = [
    SalesChannelConfig(
        channel_id="web",
        name="Web shop",
        document_kinds=["delivery_note", "return_label"],
        # stores hold two units of each SKU back from the web shop for walk-in customers
        safety_buffers={"store": 2},
    ),
    SalesChannelConfig(
        channel_id="b2b",
        name="B2B portal",
        approval_reasons=[
            ApprovalReasonConfig(
                reason="credit-check",
                rank=1,
                approvers=["alice"],
                description="B2B orders need a credit check",
            )
        ],
        document_kinds=["delivery_note"],
    ),
]

STOCK = [
    ("WH-BERLIN", "SKU-1", 50),
    ("WH-MUNICH", "SKU-1", 100),
    ("ST-HAMBURG", "SKU-1", 5),
    ("WH-BERLIN", "SKU-2", 20),
    ("WH-MUNICH", "SKU-2", 10),
    ("WH-LONDON", "SKU-2", 40),
    ("WH-MUNICH", "SKU-3", 30),
    ("WH-LONDON", "SKU-3", 30),
]

# (key, name, role, identity): development keys only; production keys are created by admins
API_KEYS = [
    ("dev-admin", "admin", "admin", "admin"),
    ("dev-ops", "operations", "ops", "ops"),
    ("dev-web", "web shop", "webshop", "web"),
    ("dev-b2b", "b2b portal", "webshop", "b2b"),
    ("dev-alice", "approver alice", "approver", "alice"),
    ("dev-berlin", "Berlin warehouse", "location", "WH-BERLIN"),
    ("dev-munich", "Munich warehouse", "location", "WH-MUNICH"),
    ("dev-hamburg", "Hamburg store", "location", "ST-HAMBURG"),
    ("dev-london", "London warehouse", "location", "WH-LONDON"),
]


async def seed_demo(store: Store, *, stock: bool = True) -> None:
    """Idempotent: configuration is upserted; stock only goes in on an empty inventory,
    so restarting `make dev` never resets what orders have reserved or shipped."""
    await store.config.upsert_locations([loc.model_dump() for loc in LOCATIONS])
    await store.config.upsert_channels([c.model_dump(mode="json") for c in CHANNELS])
    for key, name, role, identity in API_KEYS:
        await store.config.upsert_api_key(key, name=name, role=role, identity=identity)
    if stock and not await store.inventory.stock({sku for _, sku, _ in STOCK}):
        await store.inventory.set_stock(STOCK)
