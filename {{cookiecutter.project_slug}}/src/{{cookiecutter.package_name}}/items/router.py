"""HTTP routes for items."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from {{ cookiecutter.package_name }}.dependencies import (
    ReadSessionDep,
    ReplicaSessionDep,
    SessionDep,
)
from {{ cookiecutter.package_name }}.items import service
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.items.schemas import (
    ItemCreate,
    ItemPublic,
    ItemUpdate,
    ItemWithReviews,
    ReviewCreate,
    ReviewPublic,
)
from {{ cookiecutter.package_name }}.responses import (
    DATABASE_UNAVAILABLE,
    INVALID_REQUEST,
    ErrorMessage,
)

# The id column is a 32-bit integer; larger ids cannot exist, so they are a 422.
MAX_ID = 2_147_483_647

router = APIRouter(
    prefix="/items",
    tags=["items"],
    responses={
        status.HTTP_422_UNPROCESSABLE_CONTENT: INVALID_REQUEST,
        status.HTTP_503_SERVICE_UNAVAILABLE: DATABASE_UNAVAILABLE,
    },
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {
        "model": ErrorMessage,
        "description": "No such item",
        "content": {"application/json": {"example": {"detail": "Item 42 not found"}}},
    }
}


ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def valid_item_id(item_id: ItemId, session: SessionDep) -> Item:
    """Load the item named in the path for a change, or answer 404."""
    item = await service.get(session=session, item_id=item_id)
    if item is None:
        raise not_found(item_id)
    return item


def not_found(item_id: int) -> HTTPException:
    """Build the 404 answer for an item that does not exist."""
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Item {item_id} not found")


ItemDep = Annotated[Item, Depends(valid_item_id)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, session: SessionDep) -> ItemPublic:
    """Create an item."""
    item = await service.create(session=session, data=data)
    return ItemPublic.model_validate(item)


@router.get("")
async def list_items(
    # A listing may lag the primary by the replica's delay; reading one item
    # back, just written, stays on the primary (get_item).
    session: ReplicaSessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[ItemPublic]:
    """List items, oldest first."""
    items = await service.list_page(session=session, limit=limit, offset=offset)
    return [ItemPublic.model_validate(item) for item in items]


@router.get("/{item_id}", responses=NOT_FOUND)
async def get_item(item_id: ItemId, session: ReadSessionDep) -> ItemPublic:
    """Return one item."""
    item = await service.get(session=session, item_id=item_id)
    if item is None:
        raise not_found(item_id)
    return ItemPublic.model_validate(item)


@router.patch("/{item_id}", responses=NOT_FOUND)
async def update_item(item: ItemDep, data: ItemUpdate, session: SessionDep) -> ItemPublic:
    """Change some fields of an item."""
    item = await service.update(session=session, item=item, data=data)
    return ItemPublic.model_validate(item)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
async def delete_item(item: ItemDep, session: SessionDep) -> None:
    """Delete an item."""
    await service.delete(session=session, item=item)


@router.get("/{item_id}/reviews", responses=NOT_FOUND)
async def get_item_with_reviews(item_id: ItemId, session: ReadSessionDep) -> ItemWithReviews:
    """Return one item with its reviews, oldest first."""
    item = await service.get_with_reviews(session=session, item_id=item_id)
    if item is None:
        raise not_found(item_id)
    return ItemWithReviews.model_validate(item)


@router.post("/{item_id}/reviews", status_code=status.HTTP_201_CREATED, responses=NOT_FOUND)
async def create_review(item: ItemDep, data: ReviewCreate, session: SessionDep) -> ReviewPublic:
    """Review an item."""
    review = await service.add_review(session=session, item=item, data=data)
    return ReviewPublic.model_validate(review)
