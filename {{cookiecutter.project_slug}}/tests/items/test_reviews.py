"""Reviews refer to items: loaded eagerly with their item, and they keep it from being deleted."""

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from {{ cookiecutter.package_name }}.items.models import Item

ITEM = {"name": "Espresso cup", "price": "9.5"}
REVIEW = {"rating": 5, "comment": "Keeps the coffee hot"}


async def create_item(client: AsyncClient) -> int:
    response = await client.post("/items", json=ITEM)
    assert response.status_code == 201, response.text
    item_id: int = response.json()["id"]
    return item_id


async def review(client: AsyncClient, item_id: int, **changes: Any) -> dict[str, Any]:
    response = await client.post(f"/items/{item_id}/reviews", json=REVIEW | changes)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_item_comes_with_its_reviews_oldest_first(client: AsyncClient) -> None:
    item_id = await create_item(client)
    first = await review(client, item_id)
    second = await review(client, item_id, rating=3, comment=None)
    assert first["item_id"] == item_id
    assert first["created_at"]
    response = await client.get(f"/items/{item_id}/reviews")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == ITEM["name"]
    assert body["reviews"] == [first, second]
    # The item's own route is unchanged: no reviews in it.
    assert "reviews" not in (await client.get(f"/items/{item_id}")).json()


async def test_an_item_without_reviews_has_an_empty_list(client: AsyncClient) -> None:
    item_id = await create_item(client)
    assert (await client.get(f"/items/{item_id}/reviews")).json()["reviews"] == []


async def test_deleting_a_reviewed_item_is_a_409_and_deletes_nothing(client: AsyncClient) -> None:
    item_id = await create_item(client)
    kept = await review(client, item_id)
    response = await client.delete(f"/items/{item_id}")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Still referenced by other data (constraint fk_reviews_item_id_items)"
    }
    assert (await client.get(f"/items/{item_id}/reviews")).json()["reviews"] == [kept]
    # The failed DELETE left the request's transaction, not the test's, rolled back.
    assert (await client.post(f"/items/{item_id}/reviews", json=REVIEW)).status_code == 201


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_the_reviews_of_a_missing_item_are_a_404(client: AsyncClient, method: str) -> None:
    response = await client.request(method, "/items/123456789/reviews", json=REVIEW)
    assert response.status_code == 404
    assert response.json() == {"detail": "Item 123456789 not found"}


@pytest.mark.parametrize("body", [{"rating": 0}, {"rating": 6}, {"rating": 5, "stars": 5}, {}])
async def test_a_bad_review_is_a_422(client: AsyncClient, body: dict[str, Any]) -> None:
    item_id = await create_item(client)
    assert (await client.post(f"/items/{item_id}/reviews", json=body)).status_code == 422


async def test_a_lazy_load_raises_instead_of_querying(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    item_id = await create_item(client)
    async with AsyncSession(bind=connection) as session:
        item = await session.get(Item, item_id)
        assert item is not None
        # Under asyncio a lazy load cannot run; lazy="raise" says so at once.
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = item.reviews
