//! Client histories in the JSON Lines format of `shared/HISTORY.md` (being written).
