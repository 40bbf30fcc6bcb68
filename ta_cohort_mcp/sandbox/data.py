"""Sample data of the sandbox: a game's users and events, in the shape TA stores them.

Two DuckDB tables contain every project, which a `project_id` BIGINT column
distinguishes:

- `ta_user`: one row per user. `"#user_id"` is the internal id (unique within a
  project), `"#account_id"` and `"#distinct_id"` the ids a client sends, then the
  user properties (`user_level`, `channel`, `register_time`, ...).
- `ta_event`: one row per event, with the ids of its user, `"#event_name"`,
  `"#event_time"`, `"#os"` and the event properties (`item_id`, `pay_amount`, ...).
  An event property is NULL on events that do not carry it.

The reference's virtual property `#vp@test_num` is the plain column `test_num` here:
the compiler maps every `#vp@name` to the column `name`.

Rows are computed in SQL from `hash(key, seed, label)`, so the same seed and `today`
give the same rows. Ten million events take about 13 s to generate (measured on
2 cores with DuckDB 2.0.1). Events fall in the 60 calendar days that end with
`today` (day 0). Besides events at random, the generator writes patterns so that
every example definition of the API reference finds users:

- about 1 user in 5 does consume_item 5 to 8 times in days 1-7, and level 3 is the
  most common `user_level`, so "level 3 and consume_item more than 4 times in 1-7"
  matches;
- about 1 user in 8 repeats player_register 5 to 7 times in days 1-30;
- fight_success is a common event over all 60 days;
- about 1 user in 6 does pay on android in days 0-1, with `test_num`;
- about 1 user in 6 does activity_attend on android in days 0-1, with
  `activity_reward`.
"""

import datetime
import logging

import duckdb

logger = logging.getLogger(__name__)

USER_TABLE = "ta_user"
EVENT_TABLE = "ta_event"

DEFAULT_USERS = 1_000
DEFAULT_EVENTS_PER_USER = 30.0
# Events happen on the days from DAYS - 1 days before `today` to `today`, both included.
DAYS = 60

# Column name -> DuckDB type. The compiler checks definitions against these.
USER_COLUMNS: dict[str, str] = {
    "project_id": "BIGINT",
    "#account_id": "VARCHAR",
    "#distinct_id": "VARCHAR",
    "#user_id": "BIGINT",
    "user_level": "INTEGER",
    "channel": "VARCHAR",
    "register_time": "TIMESTAMP",
    "last_login_time": "TIMESTAMP",
    "vip": "BOOLEAN",
    "total_pay": "DOUBLE",
    "gold": "INTEGER",
    "country": "VARCHAR",
    "nickname": "VARCHAR",
}
EVENT_COLUMNS: dict[str, str] = {
    "project_id": "BIGINT",
    "#user_id": "BIGINT",
    "#account_id": "VARCHAR",
    "#distinct_id": "VARCHAR",
    "#event_name": "VARCHAR",
    "#event_time": "TIMESTAMP",
    "#os": "VARCHAR",
    "#app_version": "VARCHAR",
    "item_id": "VARCHAR",
    "item_count": "INTEGER",
    "pay_amount": "DOUBLE",
    "is_first_pay": "BOOLEAN",
    "test_num": "DOUBLE",
    "activity_reward": "VARCHAR",
    "level": "INTEGER",
    "stage": "VARCHAR",
}

# Event name -> relative weight among the events written at random.
EVENT_WEIGHTS: dict[str, int] = {
    "login": 24,
    "logout": 18,
    "consume_item": 14,
    "fight_success": 12,
    "activity_attend": 7,
    "level_up": 6,
    "pay": 5,
    "share": 4,
    "chat": 4,
}

_CHANNELS = ["app_store", "google_play", "huawei", "taptap", "official", "facebook"]
_COUNTRIES = ["CN", "JP", "US", "KR", "DE", "BR", "FR", "TH"]
_NICKNAMES = [
    "Alice", "Bob", "张伟", "Müller", "José", "さくら", "Ødegaard", "Ivan", "Łukasz",
    "Zoë", "민준", "Olivia",
]  # fmt: skip
_OS = ["android", "android", "android", "ios", "ios", "windows", "mac"]
_APP_VERSIONS = ["1.8.0", "1.9.2", "2.0.0", "2.0.1"]
_ITEMS = ["sword", "shield", "potion", "gem_pack", "skin_01", "skin_02", "energy"]
_REWARDS = ["gold", "gem", "skin", "ticket", "exp_card"]
_STAGES = ["1-1", "1-2", "1-3", "2-1", "2-2", "3-1", "boss"]
_PRICES = [0.99, 4.99, 9.99, 19.99, 49.99, 99.99]


def generate(
    connection: duckdb.DuckDBPyConnection,
    *,
    project_id: int,
    users: int = DEFAULT_USERS,
    today: datetime.date,
    seed: int,
    events_per_user: float | None = None,
) -> bool:
    """Write a project's sample users and events, creating the tables if absent.

    The data depends only on the arguments. A project that already has users is left
    as it is, so calling this again never duplicates rows. Returns whether rows were
    written.

    Raises:
        ValueError: `users` is below 1 or `events_per_user` is negative.
    """
    if users < 1:
        raise ValueError(f"users must be at least 1; got {users}")
    per_user = DEFAULT_EVENTS_PER_USER if events_per_user is None else events_per_user
    if per_user < 0:
        raise ValueError(f"events_per_user must be 0 or more; got {per_user}")

    # A datetime is also a date: keep only its date, so day 0 starts at midnight.
    today = datetime.date(today.year, today.month, today.day)
    create_tables(connection)
    existing = connection.execute(
        f"SELECT count(*) FROM {USER_TABLE} WHERE project_id = ?", [project_id]
    ).fetchall()
    if existing[0][0] > 0:
        logger.debug("project %s already has sample data", project_id)
        return False

    random_events = round(users * per_user * 0.85)
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute(_user_insert_sql(project_id, users, seed), [today])
        connection.execute(
            _event_insert_sql(project_id, users, seed, random_events), [today]
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    logger.info(
        "generated sample data for project %s: %s users, seed %s, today %s",
        project_id,
        users,
        seed,
        today,
    )
    return True


def create_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """Create `ta_user` and `ta_event` if they do not exist."""
    for table, columns in ((USER_TABLE, USER_COLUMNS), (EVENT_TABLE, EVENT_COLUMNS)):
        column_sql = ", ".join(
            f"{quote_identifier(name)} {kind}" for name, kind in columns.items()
        )
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} ({column_sql})")


def quote_identifier(name: str) -> str:
    """Quote a column name for DuckDB SQL, doubling any quote inside it."""
    return '"' + name.replace('"', '""') + '"'


def _literal_list(values: list[str]) -> str:
    """Write constant strings of this module as a DuckDB list literal."""
    return (
        "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"
    )


def _uniform(key: str, seed: int, label: str) -> str:
    """SQL for a pseudo-random DOUBLE in [0, 1) from a row key, the seed and a label."""
    return f"((hash({key}, {seed}, '{label}') % 1000003) / 1000003.0)"


def _pick(values: list[str], key: str, seed: int, label: str) -> str:
    """SQL picking one of `values` at random for a row."""
    index = f"CAST(hash({key}, {seed}, '{label}') % {len(values)} AS BIGINT) + 1"
    return f"{_literal_list(values)}[{index}]"


def _user_ids_sql(uid: str) -> tuple[str, str]:
    """SQL of `#account_id` and `#distinct_id` for the user whose `#user_id` is `uid`."""
    account = f"'acc' || {uid}"
    distinct = f"substr(md5('did' || {uid}), 1, 16)"
    return account, distinct


def _user_insert_sql(project_id: int, users: int, seed: int) -> str:
    """SQL writing the users 1..users of a project; its one parameter is `today`."""
    u = "i"
    account, distinct = _user_ids_sql(u)
    level = (
        f"CASE WHEN {_uniform(u, seed, 'lvl3')} < 0.35 THEN 3 "
        f"ELSE 1 + CAST(floor({_uniform(u, seed, 'lvl')} * 10) AS INTEGER) END"
    )
    register = (
        f"CAST(? AS TIMESTAMP) - to_days(CAST(floor({_uniform(u, seed, 'regd')} * 90) "
        f"AS INTEGER)) + to_seconds(CAST(floor({_uniform(u, seed, 'regs')} * 86400) "
        "AS BIGINT))"
    )
    uid = '"#user_id"'
    last_login = (
        f"CASE WHEN {_uniform(uid, seed, 'llnull')} < 0.1 THEN NULL ELSE register_time "
        f"+ to_seconds(CAST(floor({_uniform(uid, seed, 'll')} * 86400 * 20) AS BIGINT))"
        " END"
    )
    return f"""
        INSERT INTO {USER_TABLE} BY NAME
        SELECT
            *,
            {last_login} AS last_login_time
        FROM (
            SELECT
                CAST({int(project_id)} AS BIGINT) AS project_id,
                {account} AS "#account_id",
                {distinct} AS "#distinct_id",
                CAST({u} AS BIGINT) AS "#user_id",
                {level} AS user_level,
                {_pick(_CHANNELS, u, seed, "channel")} AS channel,
                {register} AS register_time,
                CASE WHEN {_uniform(u, seed, "vipnull")} < 0.05 THEN NULL
                     ELSE {_uniform(u, seed, "vip")} < 0.2 END AS vip,
                CASE WHEN {_uniform(u, seed, "paying")} < 0.4 THEN NULL
                     ELSE round({_uniform(u, seed, "pay")} * 500, 2) END AS total_pay,
                CAST(floor({_uniform(u, seed, "gold")} * 10000) AS INTEGER) AS gold,
                CASE WHEN {_uniform(u, seed, "cnull")} < 0.05 THEN NULL
                     ELSE {_pick(_COUNTRIES, u, seed, "country")} END AS country,
                {_pick(_NICKNAMES, u, seed, "nick")} || '_' || {u} AS nickname
            FROM range(1, {int(users)} + 1) AS t(i)
        )
    """


def _random_events_sql(users: int, seed: int, count: int) -> str:
    """SQL of `count` events of random users, names and times over the DAYS days."""
    names: list[str] = []
    for name, weight in EVENT_WEIGHTS.items():
        names.extend([name] * weight)
    # Squaring a uniform number skews activity so that some users are far more active.
    uid = f"1 + CAST(floor(pow({_uniform('i', seed, 'user')}, 2) * {users}) AS BIGINT)"
    return f"""
        SELECT
            {uid} AS uid,
            {_pick(names, "i", seed, "name")} AS name,
            CAST(floor({_uniform("i", seed, "day")} * {DAYS}) AS INTEGER) AS day,
            hash(i, {seed}, 'key') AS key,
            NULL AS os
        FROM range({int(count)}) AS t(i)
    """


def _pattern_sql(
    seed: int,
    users: int,
    name: str,
    *,
    one_in: int,
    times: tuple[int, int],
    days: tuple[int, int],
    os: str | None = None,
) -> str:
    """SQL of events that about one user in `one_in` does a few times in `days`.

    Each chosen user does `name` between times[0] and times[1] times, on days from
    days[0] to days[1] days ago, both included.
    """
    label = f"pattern_{name}"
    low, high = times
    first_day, last_day = days
    chosen = f"hash(uid, {seed}, '{label}') % {one_in} = 0"
    repeats = f"{low} + hash(uid, {seed}, '{label}_n') % {high - low + 1}"
    day = (
        f"{first_day} + CAST(floor({_uniform('key', seed, 'day')} * "
        f"{last_day - first_day + 1}) AS INTEGER)"
    )
    os_sql = f"'{os}'" if os else "NULL"
    return f"""
        SELECT uid, '{name}' AS name, {day} AS day, key, {os_sql} AS os
        FROM (
            SELECT uid, hash(uid, k, {seed}, '{label}_key') AS key
            FROM range(1, {int(users)} + 1) AS u(uid), range({high}) AS r(k)
            WHERE {chosen} AND k < {repeats}
        )
    """


def _registration_sql(seed: int, users: int) -> str:
    """SQL of the register and player_register events of users who registered in
    the DAYS days."""
    # The same hash as the user's register_time, so the events fall on that day.
    day = f"CAST(floor({_uniform('uid', seed, 'regd')} * 90) AS INTEGER)"
    return f"""
        SELECT uid, name, {day} AS day, hash(uid, name, {seed}, 'regkey') AS key,
               NULL AS os
        FROM range(1, {int(users)} + 1) AS u(uid),
             (VALUES ('register'), ('player_register')) AS n(name)
        WHERE {day} < {DAYS}
    """


def _event_insert_sql(project_id: int, users: int, seed: int, count: int) -> str:
    """SQL writing a project's events; its one parameter is `today`."""
    parts = [
        _random_events_sql(users, seed, count),
        _registration_sql(seed, users),
        _pattern_sql(seed, users, "consume_item", one_in=5, times=(5, 8), days=(1, 7)),
        _pattern_sql(
            seed, users, "player_register", one_in=8, times=(5, 7), days=(1, 30)
        ),
        _pattern_sql(
            seed, users, "pay", one_in=6, times=(1, 3), days=(0, 1), os="android"
        ),
        _pattern_sql(
            seed,
            users,
            "activity_attend",
            one_in=6,
            times=(1, 3),
            days=(0, 1),
            os="android",
        ),
    ]
    union = "\nUNION ALL\n".join(parts)
    account, distinct = _user_ids_sql("uid")
    event_time = (
        "CAST(? AS TIMESTAMP) - to_days(day) + to_seconds(CAST(floor("
        f"{_uniform('key', seed, 'sec')} * 86400) AS BIGINT))"
    )
    is_pay = "name = 'pay'"
    return f"""
        INSERT INTO {EVENT_TABLE} BY NAME
        SELECT
            CAST({int(project_id)} AS BIGINT) AS project_id,
            uid AS "#user_id",
            {account} AS "#account_id",
            {distinct} AS "#distinct_id",
            name AS "#event_name",
            {event_time} AS "#event_time",
            coalesce(os, {_pick(_OS, "uid", seed, "os")}) AS "#os",
            {_pick(_APP_VERSIONS, "key", seed, "ver")} AS "#app_version",
            CASE WHEN name IN ('consume_item', 'pay')
                 THEN {_pick(_ITEMS, "key", seed, "item")} END AS item_id,
            CASE WHEN name IN ('consume_item', 'pay')
                 THEN 1 + CAST(hash(key, {seed}, 'count') % 5 AS INTEGER)
                 END AS item_count,
            CASE WHEN {is_pay}
                 THEN {_literal_list([str(p) for p in _PRICES])}[
                     CAST(hash(key, {seed}, 'price') % {len(_PRICES)} AS BIGINT) + 1
                 ]::DOUBLE
                 END AS pay_amount,
            CASE WHEN {is_pay}
                 THEN hash(uid, key, {seed}, 'first') % 4 = 0 END AS is_first_pay,
            CASE WHEN {is_pay} AND {_uniform("key", seed, "tnnull")} >= 0.1
                 THEN round({_uniform("key", seed, "tn")} * 100, 2) END AS test_num,
            CASE WHEN name = 'activity_attend' AND
                      {_uniform("key", seed, "rwnull")} >= 0.1
                 THEN {_pick(_REWARDS, "key", seed, "reward")} END AS activity_reward,
            CASE WHEN name IN ('level_up', 'fight_success')
                 THEN 1 + CAST(hash(key, {seed}, 'level') % 60 AS INTEGER)
                 END AS level,
            CASE WHEN name = 'fight_success'
                 THEN {_pick(_STAGES, "key", seed, "stage")} END AS stage
        FROM ({union})
    """
