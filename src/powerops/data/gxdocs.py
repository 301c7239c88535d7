"""Data Docs that keep every page.

Great Expectations' index builder deletes each page whose validation result is not in the
context's results store. powerops validates in an ephemeral context (a process knows only its
own results), so every validation deleted the pages of all earlier ones, and a dataset
version's link to its Data Docs page broke with the next month. This builder lists the pages
on disk instead, and deletes none. GE imports it by name (the site's `site_index_builder`).
"""

from __future__ import annotations

from typing import Any

from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder


class KeepingSiteIndexBuilder(DefaultSiteIndexBuilder):
    """GE's index page, built from the pages on disk; no page is ever removed."""

    def build(self, skip_and_clean_missing: bool = False, build_index: bool = True) -> Any:
        return super().build(skip_and_clean_missing=False, build_index=build_index)
