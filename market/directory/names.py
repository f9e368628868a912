"""Place names in the order people read them: by pinyin (拼音), not by code point."""

from __future__ import annotations

from pypinyin import lazy_pinyin, load_phrases_dict

# Readings pypinyin gets wrong for our place names (长 is cháng in 长坡镇, not zhǎng).
load_phrases_dict({"长坡": [["cháng"], ["pō"]]})


def pinyin_key(name: str) -> tuple[list[str], str]:
    """Sort key: the name's syllables (曹江镇 -> cao jiang zhen), then the name itself so that
    names reading alike keep a stable order."""
    return [syllable.lower() for syllable in lazy_pinyin(name)], name
