"""``{% nav_app_list %}``: the admin's navigation sidebar (every registered model), rendered once per process
for each list of models and each highlighted entry, instead of on every page.

Django renders the sidebar's ~60 rows on every admin page: a quarter of a list page's rendering time.
Its HTML depends only on the models this staff member may see (``available_apps``), which of them the
page's path highlights, and the language; those are the cache key.
"""

from __future__ import annotations

from urllib.parse import quote

from django import template
from django.utils.translation import get_language

register = template.Library()

# Per process: a new combination adds an entry; a full cache starts over.
CACHE_SIZE = 512
_rendered: dict = {}


def _key(apps: list[dict], path: str) -> tuple:
    # The template's own test for the highlighted app and model: ``url in request.path|urlencode``.
    here = quote(path, safe="/")
    return (
        get_language(),
        tuple(
            (
                app["app_label"],
                str(app["name"]),
                app["app_url"],
                app["app_url"] in here,
                tuple(
                    (
                        model["object_name"],
                        str(model["name"]),
                        model.get("admin_url"),
                        model.get("add_url"),
                        model.get("view_only"),
                        bool(model.get("admin_url")) and model["admin_url"] in here,
                    )
                    for model in app["models"]
                ),
            )
            for app in apps
        ),
    )


@register.simple_tag(takes_context=True)
def nav_app_list(context) -> str:
    request = context["request"]
    apps = context.get("available_apps") or []
    key = _key(apps, request.path)
    html = _rendered.get(key)
    if html is None:
        if len(_rendered) >= CACHE_SIZE:
            _rendered.clear()
        html = _rendered[key] = context.template.engine.get_template("admin/app_list.html").render(
            context.new({"app_list": apps, "show_changelinks": False, "request": request})
        )
    return html
