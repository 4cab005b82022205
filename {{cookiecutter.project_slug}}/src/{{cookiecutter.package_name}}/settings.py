"""The service's own settings: yours, beside the template's in infrastructure/config.py.

Settings inherits from ServiceSettings, so `SettingsDep` gives both, and a bad
value stops start-up with one line naming its variable, as the template's do.
A field `orders_page_size` is read from ORDERS_PAGE_SIZE (or .env).
"""

from pydantic_settings import BaseSettings


class ServiceSettings(BaseSettings):
    """The variables your domains read; document each in .env.example."""

    # For example:
    # orders_page_size: int = Field(default=50, gt=0, le=500)
