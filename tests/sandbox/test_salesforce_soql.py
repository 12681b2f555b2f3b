"""The sandbox's SOQL engine against a real Postgres holding a handful of records, and through the real client."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from csops.sandbox.salesforce import soql
from csops.sandbox.salesforce.errors import ApiError
from csops.sandbox.salesforce.objects import OBJECTS_BY_NAME, Field, ddl, make_id
from tests.conftest import create_database

TODAY = date(2026, 11, 20)
USER = make_id("005", 1)
ACME, GLOBEX, INITECH, UMBRELLA, BOBBY = (make_id("001", n) for n in range(1, 6))
ALICE, BOB = make_id("003", 1), make_id("003", 2)


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


ACCOUNTS = [
    # Id, Name, Tier, employees, owner, renewal date, last modified, deleted
    (ACME, "Acme", "Tier 1", 500, USER, TODAY, utc(2026, 11, 20, 9), False),
    (GLOBEX, "Globex", "Tier 2", 50, None, TODAY - timedelta(days=1), utc(2026, 11, 13, 0, 0, 0), False),
    (INITECH, "Initech", None, None, USER, TODAY - timedelta(days=8), utc(2026, 11, 12, 23, 59, 59), False),
    (UMBRELLA, "Umbrella 100%_done", "Tier 3", 5, USER, TODAY + timedelta(days=3), utc(2026, 10, 1), False),
    (BOBBY, "Bobby'); drop table sf.\"Account\"; --", "Tier 2", 7, USER, None, utc(2026, 9, 1), True),
]


@pytest.fixture(scope="module")
def org(postgres) -> str:
    """A sandbox database with the catalog's tables, the cursor tables and a few records."""
    url = create_database(postgres, "soql")
    with psycopg.connect(url) as conn:
        conn.execute(ddl())
        soql.ensure_schema(conn)
        conn.execute('insert into sf."User" ("Id", "Name", "IsDeleted", "Username") values (%s, %s, false, %s)',
                     (USER, "Aiko Sato", "aiko@example.com"))
        conn.cursor().executemany(
            'insert into sf."Account" ("Id", "Name", "Tier__c", "NumberOfEmployees", "OwnerId", '
            '"Renewal_Date__c", "LastModifiedDate", "IsDeleted") values (%s, %s, %s, %s, %s, %s, %s, %s)', ACCOUNTS)
        conn.cursor().executemany(
            'insert into sf."Contact" ("Id", "LastName", "Email", "AccountId", "Key_Person__c", "IsDeleted") '
            'values (%s, %s, %s, %s, %s, false)',
            [(ALICE, "Alice", "alice@acme.example", ACME, True), (BOB, "Bob", None, None, False)])
    return url


@pytest.fixture
def conn(org):
    with psycopg.connect(org) as connection:
        yield connection


def names(conn, where: str, **options) -> list[str]:
    query = soql.compile_query(f"SELECT Name FROM Account WHERE {where} ORDER BY Name", today=TODAY, **options)
    return [record["Name"] for record in query.records(conn)]


def test_parent_fields_become_nested_records_and_a_missing_parent_is_null(conn):
    query = soql.compile_query("SELECT Id, LastName, Account.Name, Account.Owner.Name, Account.Tier__c "
                               "FROM Contact ORDER BY LastName")
    url = "/services/data/v59.0/sobjects"
    assert query.records(conn) == [
        {"attributes": {"type": "Contact", "url": f"{url}/Contact/{ALICE}"}, "Id": ALICE, "LastName": "Alice",
         "Account": {"attributes": {"type": "Account", "url": f"{url}/Account/{ACME}"}, "Name": "Acme",
                     "Owner": {"attributes": {"type": "User", "url": f"{url}/User/{USER}"}, "Name": "Aiko Sato"},
                     "Tier__c": "Tier 1"}},
        {"attributes": {"type": "Contact", "url": f"{url}/Contact/{BOB}"}, "Id": BOB, "LastName": "Bob",
         "Account": None},
    ]


def test_a_parent_without_its_own_parent_is_a_record_whose_relationship_is_null(conn):
    query = soql.compile_query(f"SELECT Name, Owner.Name FROM Account WHERE Id = '{GLOBEX}'")
    assert query.records(conn)[0]["Owner"] is None
    assert query.csv_header() == ["Name", "Owner.Name"]
    assert query.csv_row(query.rows(conn)[0]) == ["Globex", ""]


def test_keywords_objects_and_fields_are_case_insensitive_and_answer_with_api_names(conn):
    query = soql.compile_query("select iD, NAME from ACCOUNT where tier__c = 'TIER 1' order BY name")
    assert query.records(conn) == [{"attributes": {"type": "Account",
                                                   "url": f"/services/data/v59.0/sobjects/Account/{ACME}"},
                                    "Id": ACME, "Name": "Acme"}]


@pytest.mark.parametrize(("where", "expected"), [
    ("Tier__c = 'Tier 2'", ["Globex"]),
    ("Tier__c != 'Tier 2'", ["Acme", "Initech", "Umbrella 100%_done"]),  # null counts as a different value
    ("Tier__c <> 'Tier 2'", ["Acme", "Initech", "Umbrella 100%_done"]),
    ("NumberOfEmployees < 50", ["Umbrella 100%_done"]),
    ("NumberOfEmployees <= 50", ["Globex", "Umbrella 100%_done"]),
    ("NumberOfEmployees > 50", ["Acme"]),
    ("NumberOfEmployees >= 50.0", ["Acme", "Globex"]),
    ("Tier__c IN ('Tier 1', 'Tier 3')", ["Acme", "Umbrella 100%_done"]),
    ("Tier__c in ('Tier 1', null)", ["Acme", "Initech"]),
    ("Tier__c NOT IN ('Tier 1', 'Tier 3')", ["Globex", "Initech"]),
    ("Name LIKE 'g%'", ["Globex"]),
    ("Name LIKE '%100\\%\\_%'", ["Umbrella 100%_done"]),
    ("Name LIKE 'In_tech'", ["Initech"]),
    ("Tier__c = null", ["Initech"]),
    ("Tier__c != null", ["Acme", "Globex", "Umbrella 100%_done"]),
    ("Tier__c = 'Tier 2' OR NumberOfEmployees > 100", ["Acme", "Globex"]),
    ("Tier__c != null AND NumberOfEmployees < 100", ["Globex", "Umbrella 100%_done"]),
    ("NOT Tier__c = 'Tier 1'", ["Globex", "Initech", "Umbrella 100%_done"]),
    ("NOT (Tier__c = 'Tier 1' OR Tier__c = 'Tier 2') AND Owner.Name = 'aiko sato'",
     ["Initech", "Umbrella 100%_done"]),
    ("Owner.Name = null", ["Globex"]),
    ("Renewal_Date__c = 2026-11-20", ["Acme"]),
    ("Renewal_Date__c < 2026-11-20", ["Globex", "Initech"]),
    ("LastModifiedDate >= 2026-11-13T00:00:00Z", ["Acme", "Globex"]),
    ("LastModifiedDate > 2026-11-13T08:59:59+09:00", ["Acme", "Globex"]),  # the same moment as 23:59:59Z
    ("LastModifiedDate = 2026-11-20T09:00:00.000+0000", ["Acme"]),
    ("Renewal_Date__c = TODAY", ["Acme"]),
    ("Renewal_Date__c = YESTERDAY", ["Globex"]),
    ("Renewal_Date__c = LAST_N_DAYS:7", ["Acme", "Globex"]),
    ("Renewal_Date__c = LAST_N_DAYS:8", ["Acme", "Globex", "Initech"]),
    ("Renewal_Date__c < LAST_N_DAYS:7", ["Initech"]),
    ("Renewal_Date__c = NEXT_N_DAYS:3", ["Umbrella 100%_done"]),
    ("Renewal_Date__c > TODAY", ["Umbrella 100%_done"]),
    ("LastModifiedDate = TODAY", ["Acme"]),
    ("LastModifiedDate = LAST_N_DAYS:7", ["Acme", "Globex"]),  # from 2026-11-13T00:00:00Z, UTC days
    ("LastModifiedDate < LAST_N_DAYS:7", ["Initech", "Umbrella 100%_done"]),
    ("Owner.IsDeleted = false", ["Acme", "Initech", "Umbrella 100%_done"]),
])
def test_where_operators(conn, where, expected):
    assert names(conn, where) == expected


def test_deleted_records_only_with_query_all(conn):
    assert names(conn, "Tier__c = 'Tier 2'") == ["Globex"]
    assert names(conn, "Tier__c = 'Tier 2'", include_deleted=True) == ['Bobby\'); drop table sf."Account"; --',
                                                                         "Globex"]


def test_order_by_limit_and_offset(conn):
    def ordered(clauses: str) -> list[str]:
        return [r["Name"] for r in soql.compile_query(f"SELECT Name FROM Account {clauses}").records(conn)]

    assert ordered("ORDER BY NumberOfEmployees DESC") == ["Acme", "Globex", "Umbrella 100%_done", "Initech"]
    assert ordered("ORDER BY NumberOfEmployees") == ["Initech", "Umbrella 100%_done", "Globex", "Acme"]  # nulls first
    assert ordered("ORDER BY NumberOfEmployees ASC NULLS LAST LIMIT 2") == ["Umbrella 100%_done", "Globex"]
    assert ordered("ORDER BY NumberOfEmployees DESC NULLS FIRST LIMIT 2 OFFSET 1") == ["Acme", "Globex"]
    assert ordered("ORDER BY Owner.Name DESC NULLS LAST, Name LIMIT 1") == ["Acme"]


def test_count(conn):
    assert soql.compile_query("SELECT COUNT() FROM Account").count(conn) == 4
    assert soql.compile_query("SELECT COUNT() FROM Account WHERE Tier__c = 'Tier 2'",
                              include_deleted=True).count(conn) == 2
    assert soql.compile_query("SELECT count() FROM Account LIMIT 3").count(conn) == 3
    assert soql.compile_query("SELECT COUNT() FROM Account").count_only


@pytest.mark.parametrize(("text", "code", "message"), [
    ("SELECT Id FRM Account", "MALFORMED_QUERY", "ERROR at Row:1:Column:11\nunexpected token: 'FRM'"),
    ("SELECT Id FROM", "MALFORMED_QUERY", "unexpected token: <EOF>"),
    ("SELECT Id, FROM Account", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
    ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY", "unexpected token"),
    ("SELECT Id FROM Account WHERE Name = 'bad \\q escape'", "MALFORMED_QUERY", "illegal escape sequence '\\q'"),
    ("SELECT Id FROM Account LIMIT 1.5", "MALFORMED_QUERY", "LIMIT needs a whole number"),
    ("SELECT Id, id FROM Account", "MALFORMED_QUERY", "duplicate field selected: Id"),
    ("", "MALFORMED_QUERY", "The query is empty"),
    ("SELECT Id FROM Foo", "INVALID_TYPE", "sObject type 'Foo' is not supported."),
    ("SELECT Foo FROM Account", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'."),
    ("SELECT Account.Foo FROM Contact", "INVALID_FIELD", "No such column 'Foo' on entity 'Account'."),
    ("SELECT Id FROM Account WHERE Foo__c = 1", "INVALID_FIELD", "No such column 'Foo__c' on entity 'Account'."),
    ("SELECT Boss.Name FROM Account", "INVALID_FIELD", "Didn't understand relationship 'Boss' in field path."),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD",
     "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", "INVALID_FIELD",
     "field 'NumberOfEmployees' must be of type double and should not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE LastModifiedDate > 2026-11-20", "INVALID_FIELD",
     "field 'LastModifiedDate' must be of type dateTime"),
    ("SELECT Id FROM Account WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: not-an-id"),
    ("SELECT Id FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000"),
])
def test_errors_name_the_problem_with_salesforce_codes(text, code, message):
    with pytest.raises(ApiError) as raised:
        soql.compile_query(text)
    assert (raised.value.status, raised.value.error_code) == (400, code)
    assert message in raised.value.message


def test_values_that_look_like_sql_stay_literals(conn):
    bobby = 'Bobby\\\'); drop table sf."Account"; --'
    assert names(conn, f"Name = '{bobby}'", include_deleted=True) == ['Bobby\'); drop table sf."Account"; --']
    assert names(conn, "Name = 'Acme\\' OR Name != \\''") == []
    assert names(conn, "Name LIKE '%\\'%'", include_deleted=True) == ['Bobby\'); drop table sf."Account"; --']
    assert soql.compile_query("SELECT COUNT() FROM Account", include_deleted=True).count(conn) == 5


def test_a_stored_cursor_pages_in_query_order_and_reads_current_values(conn):
    query = soql.compile_query("SELECT Name FROM Account ORDER BY NumberOfEmployees DESC", today=TODAY)
    cursor = soql.open_cursor(conn, query, timedelta(minutes=15))
    assert cursor.id.startswith("01g") and cursor.total_size == 4
    first, rest = soql.read_cursor(conn, cursor, 0, 2), soql.read_cursor(conn, cursor, 2, 4)
    assert [query.record(row)["Name"] for row in first + rest] == ["Acme", "Globex", "Umbrella 100%_done", "Initech"]
    conn.execute('update sf."Account" set "NumberOfEmployees" = 1 where "Id" = %s', (ACME,))  # order stays
    again = soql.find_cursor(conn, cursor.id)
    assert [query.record(row)["Name"] for row in soql.read_cursor(conn, again, 0, 1)] == ["Acme"]
    soql.close_cursor(conn, cursor.id)
    assert soql.find_cursor(conn, cursor.id) is None
    conn.rollback()


def test_an_expired_cursor_is_gone(conn):
    query = soql.compile_query("SELECT Name FROM Account")
    cursor = soql.open_cursor(conn, query, timedelta(seconds=-1))
    assert soql.find_cursor(conn, cursor.id) is None
    soql.open_cursor(conn, query, timedelta(minutes=1))  # opening another drops expired ones
    assert conn.execute("select count(*) from sf_meta.query_cursor_rows where cursor_id = %s",
                        (cursor.id,)).fetchone()[0] == 0
    conn.rollback()


def test_runtime_custom_fields_are_queryable(conn):
    objects = dict(OBJECTS_BY_NAME)
    objects["Account"] = objects["Account"].with_field(Field("Segment__c", "string"))
    conn.execute('alter table sf."Account" add column "Segment__c" text')
    conn.execute('update sf."Account" set "Segment__c" = %s where "Id" = %s', ("SMB", GLOBEX))
    query = soql.compile_query("SELECT Name, segment__c FROM Account WHERE Segment__c = 'smb'", objects)
    assert [(r["Name"], r["Segment__c"]) for r in query.records(conn)] == [("Globex", "SMB")]
    conn.rollback()


# --- Through the real client ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_tasks(salesforce_sandbox) -> tuple[str, list[str]]:
    """4,500 Tasks with a common subject prefix, written straight into the sandbox's database."""
    prefix = f"paging-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(salesforce_sandbox.database_url) as conn:
        numbers = [row[0] for row in conn.execute(
            "select nextval('sf.\"Task_id_seq\"') from generate_series(1, 4500)")]
        ids = [make_id("00T", number) for number in numbers]
        with conn.cursor().copy('copy sf."Task" ("Id", "Subject", "Status", "Priority", "IsClosed", "IsDeleted", '
                                '"SystemModstamp") from stdin') as copy:
            for n, record_id in enumerate(ids):
                copy.write_row((record_id, f"{prefix} {n:04d}", "Not Started", "Normal", False, False,
                                utc(2026, 11, 1) + timedelta(seconds=n)))
    return prefix, ids


def test_query_all_reads_every_page(salesforce_client, many_tasks):
    prefix, ids = many_tasks
    soql_text = f"SELECT Id, Subject FROM Task WHERE Subject LIKE '{prefix}%' ORDER BY SystemModstamp, Id"
    first = salesforce_client.query(soql_text)
    assert (first["totalSize"], first["done"], len(first["records"])) == (4500, False, 2000)
    assert re.fullmatch(r"/services/data/v59\.0/query/01g\w{15}-2000", first["nextRecordsUrl"])
    second = salesforce_client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert (second["done"], len(second["records"])) == (False, 2000)
    assert second["nextRecordsUrl"].endswith("-4000")

    every = salesforce_client.query_all(soql_text)["records"]
    assert [record["Id"] for record in every] == ids  # in SystemModstamp order, no record twice or missing
    assert every[0] == {"attributes": {"type": "Task", "url": f"/services/data/v59.0/sobjects/Task/{ids[0]}"},
                        "Id": ids[0], "Subject": f"{prefix} 0000"}


def test_count_and_batch_size(salesforce_client, many_tasks):
    prefix, _ids = many_tasks
    counted = salesforce_client.query(f"SELECT COUNT() FROM Task WHERE Subject LIKE '{prefix}%'")
    assert counted == {"totalSize": 4500, "done": True, "records": []}
    small = salesforce_client.query(f"SELECT Id FROM Task WHERE Subject LIKE '{prefix}%'",
                                    headers={"Sforce-Query-Options": "batchSize=500"})
    assert len(small["records"]) == 500 and small["nextRecordsUrl"].endswith("-500")


def test_query_all_shows_deleted_records(salesforce_client):
    name = f"deleted-{uuid.uuid4().hex[:8]}"
    created = salesforce_client.Account.create({"Name": name})
    salesforce_client.Account.delete(created["id"])
    soql_text = f"SELECT Id, IsDeleted FROM Account WHERE Name = '{name}'"
    assert salesforce_client.query(soql_text)["records"] == []
    [record] = list(salesforce_client.query_all_iter(soql_text, include_deleted=True))
    assert (record["Id"], record["IsDeleted"]) == (created["id"], True)


def test_query_errors_reach_the_client_with_salesforce_codes(salesforce_client):
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce_client.query("SELECT Id FROM Account WHERE")
    assert raised.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce_client.query("SELECT Id FROM Nothing__c")
    assert raised.value.content[0]["errorCode"] == "INVALID_TYPE"
    with pytest.raises(SalesforceMalformedRequest) as raised:
        salesforce_client.query_more("01g5g0000zzzzzzAAA-2000")
    assert raised.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
