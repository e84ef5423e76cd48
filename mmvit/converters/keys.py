"""Key-renaming helpers shared by the family converters."""
import re


def rename_prefixes(key, pairs):
    """``key`` with the first matching ``(theirs, ours)`` prefix replaced,
    or None when no prefix matches."""
    for theirs, ours in pairs:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def rename_first(rest, renames):
    """``rest`` with the first ``(pattern, replacement)`` of ``renames`` that
    matches at its start applied (regular expressions), or unchanged."""
    for pattern, repl in renames:
        rest, count = re.subn('^' + pattern, repl, rest)
        if count:
            break
    return rest
