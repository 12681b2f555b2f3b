"""SOQL for the Salesforce sandbox: parsed with a grammar, compiled to parameterised SQL over the `sf` tables.

A query such as `SELECT Id, Name, Account.Owner.Name FROM Contact WHERE LastModifiedDate = LAST_N_DAYS:7`
becomes one SELECT over `sf."Contact"` with a LEFT JOIN per relationship; every value travels as a
query parameter. Keywords, object and field names are case-insensitive and resolve through the catalog
to the stored names. Results come back as Salesforce's JSON records (REST) or CSV rows (Bulk API 2.0).

Query results that are read page by page (REST `nextRecordsUrl`, Bulk API 2.0 query jobs) are stored as
cursors: the ordered record Ids are kept in `sf_meta.query_cursor_rows`, so every page reads a stable slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from psycopg import sql

from csops.sandbox.salesforce.errors import ApiError
from csops.sandbox.salesforce.objects import (
    API_VERSION,
    OBJECTS_BY_NAME,
    SCHEMA,
    TEXT_TYPES,
    Field,
    SObject,
    find_object,
    is_valid_id,
    make_id,
    parse_datetime,
    to_id18,
    to_json,
)

GRAMMAR = r"""
start: "SELECT"i select_list "FROM"i NAME where_clause? order_clause? limit_clause? offset_clause?

select_list: "COUNT"i "(" ")"            -> count_all
           | field_path ("," field_path)*  -> fields
field_path: NAME ("." NAME)*

where_clause: "WHERE"i condition
?condition: conjunction
          | condition "OR"i conjunction      -> or_
?conjunction: negation
            | conjunction "AND"i negation    -> and_
?negation: "NOT"i negation                   -> not_
         | primary
?primary: comparison
        | "(" condition ")"
comparison: field_path OPERATOR value                        -> compare
          | field_path "IN"i "(" value ("," value)* ")"            -> in_
          | field_path "NOT"i "IN"i "(" value ("," value)* ")"     -> not_in
          | field_path "LIKE"i value                         -> like

value: STRING         -> string
     | NUMBER         -> number
     | DATETIME       -> datetime
     | DATE           -> date
     | DATE_LITERAL   -> relative
     | "null"i        -> null
     | "true"i        -> true
     | "false"i       -> false

order_clause: "ORDER"i "BY"i order_item ("," order_item)*
order_item: field_path direction? nulls?
direction: "ASC"i   -> asc
         | "DESC"i  -> desc
nulls: "NULLS"i "FIRST"i  -> nulls_first
     | "NULLS"i "LAST"i   -> nulls_last

limit_clause: "LIMIT"i NUMBER
offset_clause: "OFFSET"i NUMBER

OPERATOR: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
NAME: /[a-z_][a-z0-9_]*/i
STRING: /'(?:[^'\\]|\\.)*'/s
DATETIME.3: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})/i
DATE.2: /\d{4}-\d{2}-\d{2}/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)/
DATE_LITERAL.2: /((LAST_N_DAYS|NEXT_N_DAYS|N_DAYS_AGO):\d+|RELATIVE_DAYS)(?![a-z0-9_])/i

%import common.WS
%ignore WS
"""

RELATIVE_DATES = ("TODAY", "YESTERDAY", "TOMORROW", "LAST_90_DAYS", "NEXT_90_DAYS", "THIS_MONTH", "LAST_MONTH",
                  "NEXT_MONTH", "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR")
_PARSER = Lark(GRAMMAR.replace("RELATIVE_DAYS", "|".join(RELATIVE_DATES)), parser="lalr", lexer="basic")

PAGE_SIZE = 2000  # REST query results per page (Salesforce's default batch size)
MAX_OFFSET = 2000  # Salesforce refuses larger OFFSETs
CURSOR_KEY_PREFIX = "01g"  # Salesforce's query locators start with this prefix
_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\",
                   "_": "_", "%": "%"}
_OPERATORS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


# --- The parsed query --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]  # as written: ("Account", "Owner", "Name")

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Value:
    kind: str  # string, like_pattern, number, date, datetime, relative, null, boolean
    value: Any
    text: str  # as written, for error messages


@dataclass(frozen=True)
class Compare:
    path: FieldPath
    operator: str  # = != < <= > >= in not_in like
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Logical:
    operator: str  # and, or, not
    operands: tuple


@dataclass(frozen=True)
class OrderItem:
    path: FieldPath
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Statement:
    count_only: bool
    paths: tuple[FieldPath, ...]
    object_name: str
    where: Compare | Logical | None
    order: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


def _unescape(literal: str, *, like: bool) -> str:
    """A SOQL string literal's text; in LIKE patterns `\\%` and `\\_` stay escaped (they match themselves)."""
    body, out, index = literal[1:-1], [], 0
    while index < len(body):
        character = body[index]
        if character != "\\":
            out.append(character)
            index += 1
            continue
        escaped = body[index + 1]
        if escaped == "u" and len(body) >= index + 6:
            out.append(chr(int(body[index + 2:index + 6], 16)))
            index += 6
            continue
        if escaped not in _STRING_ESCAPES:
            raise ApiError(400, "MALFORMED_QUERY", f"Invalid string literal {literal}: illegal escape sequence "
                                                   f"'\\{escaped}'. Escape a backslash as '\\\\'.")
        out.append("\\" + escaped if like and escaped in "%_\\" else _STRING_ESCAPES[escaped])
        index += 2
    return "".join(out)


@v_args(inline=True)
class _ToStatement(Transformer):
    """Turns lark's parse tree into a Statement."""

    def start(self, select_list, object_name, *clauses):
        count_only, paths = select_list
        by_kind = dict(clauses)  # each clause is (kind, value)
        return Statement(count_only, paths, str(object_name), by_kind.get("where"), by_kind.get("order", ()),
                         by_kind.get("limit"), by_kind.get("offset"))

    def count_all(self):
        return True, ()

    def fields(self, *paths):
        return False, tuple(paths)

    def field_path(self, *names):
        return FieldPath(tuple(str(name) for name in names))

    def where_clause(self, condition):
        return "where", condition

    def or_(self, left, right):
        return Logical("or", (left, right))

    def and_(self, left, right):
        return Logical("and", (left, right))

    def not_(self, operand):
        return Logical("not", (operand,))

    def compare(self, path, operator, value):
        return Compare(path, _OPERATORS[str(operator)], (value,))

    def in_(self, path, *values):
        return Compare(path, "in", values)

    def not_in(self, path, *values):
        return Compare(path, "not_in", values)

    def like(self, path, value):
        if value.kind != "string":
            raise ApiError(400, "MALFORMED_QUERY", f"LIKE on {path.text} needs a string pattern in quotes, "
                                                   f"not {value.text}.")
        return Compare(path, "like", (Value("like_pattern", _unescape(value.text, like=True), value.text),))

    def string(self, token):
        return Value("string", _unescape(str(token), like=False), str(token))

    def number(self, token):
        return Value("number", Decimal(str(token)), str(token))

    def datetime(self, token):
        try:
            return Value("datetime", parse_datetime(str(token)), str(token))
        except ValueError:
            raise ApiError(400, "MALFORMED_QUERY", f"Invalid datetime literal {token}: use the form "
                                                   "2026-11-20T00:00:00Z.") from None

    def date(self, token):
        try:
            return Value("date", date.fromisoformat(str(token)), str(token))
        except ValueError:
            raise ApiError(400, "MALFORMED_QUERY", f"Invalid date literal {token}: use the form 2026-11-20.") from None

    def relative(self, token):
        name, _, number = str(token).upper().partition(":")
        return Value("relative", (name, int(number) if number else None), str(token))

    def null(self):
        return Value("null", None, "null")

    def true(self):
        return Value("boolean", True, "true")

    def false(self):
        return Value("boolean", False, "false")

    def order_clause(self, *items):
        return "order", tuple(items)

    def order_item(self, path, *modifiers):
        descending = "desc" in modifiers
        nulls_first = "nulls_first" in modifiers or ("nulls_last" not in modifiers and not descending)
        return OrderItem(path, descending, nulls_first)

    def asc(self):
        return "asc"

    def desc(self):
        return "desc"

    def nulls_first(self):
        return "nulls_first"

    def nulls_last(self):
        return "nulls_last"

    def limit_clause(self, token):
        return "limit", _whole_number(token, "LIMIT")

    def offset_clause(self, token):
        return "offset", _whole_number(token, "OFFSET")


def _whole_number(token: Token, clause: str) -> int:
    text = str(token)
    if not text.isdigit():
        raise ApiError(400, "MALFORMED_QUERY", f"{clause} needs a whole number of 0 or more, not {text}.")
    return int(text)


def _malformed(text: str, error: UnexpectedInput) -> ApiError:
    """Salesforce's MALFORMED_QUERY message: the line, a caret under the problem, and the unexpected token."""
    lines = text.splitlines() or [""]
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        row, column, found = len(lines), len(lines[-1]) + 1, "<EOF>"
    elif isinstance(error, UnexpectedToken):
        row, column, found = error.line, error.column, f"'{error.token}'"
    else:
        assert isinstance(error, UnexpectedCharacters)
        row, column, found = error.line, error.column, f"'{text.splitlines()[error.line - 1][error.column - 1]}'"
    source = lines[row - 1] if 0 < row <= len(lines) else ""
    return ApiError(400, "MALFORMED_QUERY",
                    f"\n{source}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\nunexpected token: {found}")


def parse(text: str) -> Statement:
    """The query's parts; a syntax error raises ApiError MALFORMED_QUERY naming where and what."""
    if not text or not text.strip():
        raise ApiError(400, "MALFORMED_QUERY", "The query is empty: send a SOQL query in the q parameter.")
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as error:
        raise _malformed(text, error) from None
    try:
        return _ToStatement().transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, ApiError):
            raise error.orig_exc from None
        raise


# --- Compilation -------------------------------------------------------------------------------------------


@dataclass
class Relationship:
    """A parent reached through one or more relationship names, joined as `alias`."""

    names: tuple[str, ...]  # canonical relationship names from the queried object, e.g. ("Account", "Owner")
    obj: SObject
    alias: str


@dataclass
class Column:
    """One selected field: where it sits in the record and how it is named in CSV headers."""

    relationships: tuple[str, ...]
    field: Field
    alias: str

    @property
    def label(self) -> str:
        return ".".join((*self.relationships, self.field.name))


def _no_such_column(name: str, obj: SObject) -> ApiError:
    return ApiError(400, "INVALID_FIELD",
                    f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a custom field, "
                    "be sure to append the '__c' after the custom field name. Please reference your WSDL or the "
                    "describe call for the appropriate names.")


def _filter_type_error(f: Field, expected: str, quoted: bool) -> ApiError:
    enclosure = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    return ApiError(400, "INVALID_FIELD",
                    f"value of filter criterion for field '{f.name}' must be of type {expected} and {enclosure}")


def relative_range(name: str, n: int | None, today: date) -> tuple[date, date]:
    """The first day and the day after the last day that a relative date literal (TODAY, LAST_N_DAYS:7) covers."""
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    ranges = {
        "TODAY": (today, today),
        "YESTERDAY": (today - timedelta(days=1), today - timedelta(days=1)),
        "TOMORROW": (today + timedelta(days=1), today + timedelta(days=1)),
        "LAST_90_DAYS": (today - timedelta(days=90), today),
        "NEXT_90_DAYS": (today + timedelta(days=1), today + timedelta(days=90)),
        "THIS_MONTH": (month_start, next_month - timedelta(days=1)),
        "LAST_MONTH": ((month_start - timedelta(days=1)).replace(day=1), month_start - timedelta(days=1)),
        "NEXT_MONTH": (next_month, (next_month + timedelta(days=32)).replace(day=1) - timedelta(days=1)),
        "THIS_YEAR": (date(today.year, 1, 1), date(today.year, 12, 31)),
        "LAST_YEAR": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
        "NEXT_YEAR": (date(today.year + 1, 1, 1), date(today.year + 1, 12, 31)),
    }
    if name == "LAST_N_DAYS":  # today and the n days before it
        first, last = today - timedelta(days=n), today
    elif name == "NEXT_N_DAYS":  # the n days after today
        first, last = today + timedelta(days=1), today + timedelta(days=n)
    elif name == "N_DAYS_AGO":
        first = last = today - timedelta(days=n)
    else:
        first, last = ranges[name]
    return first, last + timedelta(days=1)


class _Compiler:
    """Resolves names through the catalog and builds the SQL pieces of one Statement."""

    def __init__(self, statement: Statement, objects: dict[str, SObject], today: date) -> None:
        self.objects = objects
        self.today = today
        obj = find_object(statement.object_name, objects)
        if obj is None:
            raise ApiError(400, "INVALID_TYPE",
                           f"sObject type '{statement.object_name}' is not supported. If you are attempting to use "
                           "a custom object, be sure to append the '__c' after the entity name. Please reference "
                           "your WSDL or the describe call for the appropriate names.")
        self.obj = obj
        self.relationships: dict[tuple[str, ...], Relationship] = {}
        self.params: dict[str, Any] = {}

    # names

    def resolve(self, path: FieldPath) -> tuple[tuple[str, ...], Field, str]:
        """The relationship chain, the field and the table alias holding it; errors name the unknown part."""
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == self.obj.name.lower() and not self.obj.relationship(parts[0]):
            parts = parts[1:]  # `Account.Name` in a query on Account
        obj, alias, chain = self.obj, "t0", ()
        for name in parts[:-1]:
            reference = obj.relationship(name)
            if reference is None:
                raise ApiError(400, "INVALID_FIELD",
                               f"Didn't understand relationship '{name}' in field path. If you are attempting to "
                               "use a custom relationship, be sure to append the '__r' after the custom "
                               "relationship name. Please reference your WSDL or the describe call for the "
                               "appropriate names.")
            parent = find_object(reference.reference_to, self.objects)
            chain = (*chain, reference.relationship_name)
            alias = self._join(chain, parent).alias
            obj = parent
        found = obj.field(parts[-1])
        if found is None:
            raise _no_such_column(parts[-1], obj)
        return chain, found, alias

    def _join(self, chain: tuple[str, ...], parent: SObject) -> Relationship:
        if chain not in self.relationships:
            self.relationships[chain] = Relationship(chain, parent, f"t{len(self.relationships) + 1}")
        return self.relationships[chain]

    def param(self, value: Any) -> sql.Placeholder:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    # conditions

    def condition(self, node: Compare | Logical) -> sql.Composable:
        if isinstance(node, Logical):
            if node.operator == "not":
                return sql.SQL("(not {})").format(self.condition(node.operands[0]))
            joiner = sql.SQL(" and ") if node.operator == "and" else sql.SQL(" or ")
            return sql.SQL("({})").format(joiner.join(self.condition(operand) for operand in node.operands))
        _chain, f, alias = self.resolve(node.path)
        column = sql.Identifier(alias, f.name)
        # Salesforce compares text case-insensitively and treats null as a value: != matches nulls.
        return sql.SQL("coalesce({}, false)").format(self.comparison(f, column, node))

    def comparison(self, f: Field, column: sql.Composable, node: Compare) -> sql.Composable:
        if node.operator == "like":
            if f.type not in TEXT_TYPES:
                raise ApiError(400, "INVALID_FIELD", f"invalid operator on field '{f.name}': LIKE works on text "
                                                     f"fields only, and {f.name} is of type {f.type}.")
            return sql.SQL("{} ilike {}").format(column, self.param(node.values[0].value))
        if node.operator in {"in", "not_in"}:
            if any(v.kind == "relative" for v in node.values):
                raise ApiError(400, "MALFORMED_QUERY", f"IN on {f.name} takes plain values, not date literals "
                                                       "such as TODAY.")
            values = [self.coerce(f, v) for v in node.values]
            present = [v for v in values if v is not None]
            test = sql.SQL("{} = any({})").format(self.folded(f, column), self.param(self.fold_list(f, present)))
            if node.operator == "in":
                return sql.SQL("({} or {} is null)").format(test, column) if None in values else test
            if None in values:
                return sql.SQL("({} is not null and not {})").format(column, test)
            return sql.SQL("({} is null or not {})").format(column, test)
        value = node.values[0]
        if value.kind == "relative":
            return self.date_range(f, column, node.operator, value)
        coerced = self.coerce(f, value)
        if coerced is None:
            if node.operator not in {"=", "!="}:
                raise ApiError(400, "INVALID_FIELD", f"null can only be compared with = or != (field {f.name}).")
            return sql.SQL("{} is null" if node.operator == "=" else "{} is not null").format(column)
        if f.type == "boolean" and node.operator not in {"=", "!="}:
            raise ApiError(400, "INVALID_FIELD", f"invalid operator on boolean field '{f.name}': use = or !=.")
        operator = sql.SQL("is distinct from" if node.operator == "!=" else node.operator)
        return sql.SQL("{} {} {}").format(self.folded(f, column), operator, self.param(self.fold(f, coerced)))

    def date_range(self, f: Field, column: sql.Composable, operator: str, value: Value) -> sql.Composable:
        """A relative date literal: date fields compare on dates, datetime fields on UTC day boundaries."""
        if f.type not in {"date", "datetime"}:
            raise _filter_type_error(f, f.type, quoted=f.type in TEXT_TYPES)
        first, after = relative_range(*value.value, self.today)
        if f.type == "datetime":
            first = datetime(first.year, first.month, first.day, tzinfo=UTC)
            after = datetime(after.year, after.month, after.day, tzinfo=UTC)
        start, end = self.param(first), self.param(after)
        forms = {
            "=": sql.SQL("({c} >= {s} and {c} < {e})"),
            "!=": sql.SQL("({c} is null or {c} < {s} or {c} >= {e})"),
            "<": sql.SQL("{c} < {s}"),
            "<=": sql.SQL("{c} < {e}"),
            ">": sql.SQL("{c} >= {e}"),
            ">=": sql.SQL("{c} >= {s}"),
        }
        return forms[operator].format(c=column, s=start, e=end)

    def coerce(self, f: Field, value: Value) -> Any:
        """The literal as the field's stored type; a literal of the wrong type is an INVALID_FIELD error."""
        if value.kind == "null":
            return None
        if f.type in TEXT_TYPES:
            if value.kind != "string":
                raise _filter_type_error(f, "string", quoted=True)
            if f.type in {"id", "reference"} and value.value:
                if not is_valid_id(value.value):
                    raise ApiError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value.value}")
                return to_id18(value.value)
            return value.value
        expected = {"boolean": "boolean", "date": "date", "datetime": "dateTime"}.get(f.type, "double")
        kinds = {"boolean": "boolean", "date": "date", "datetime": "datetime"}
        wanted_kind = kinds.get(f.type, "number")
        if value.kind != wanted_kind:
            raise _filter_type_error(f, expected, quoted=False)
        return value.value

    @staticmethod
    def folded(f: Field, column: sql.Composable) -> sql.Composable:
        """Text other than Ids compares case-insensitively, as in Salesforce."""
        return sql.SQL("lower({})").format(column) if f.type in TEXT_TYPES - {"id", "reference"} else column

    @staticmethod
    def fold(f: Field, value: Any) -> Any:
        return value.lower() if f.type in TEXT_TYPES - {"id", "reference"} else value

    def fold_list(self, f: Field, values: list) -> list:
        return [self.fold(f, v) for v in values]


@dataclass
class Query:
    """A compiled SOQL query: run it, count it, or store its result as a cursor and read it page by page."""

    text: str
    obj: SObject
    count_only: bool
    columns: list[Column]
    relationships: list[Relationship]
    where: sql.Composable
    order: sql.Composable
    limit: int | None
    offset: int
    params: dict[str, Any]
    api_version: str = API_VERSION
    include_deleted: bool = False
    ordered: bool = False  # the SOQL has an ORDER BY

    # SQL

    def _joins(self) -> sql.Composable:
        joins = []
        for relationship in self.relationships:
            holder = self.relationships_by_chain().get(relationship.names[:-1])
            holder_alias = holder.alias if holder else "t0"
            holder_obj = holder.obj if holder else self.obj
            reference = holder_obj.relationship(relationship.names[-1])
            joins.append(sql.SQL(" left join {} as {} on {} = {}").format(
                sql.Identifier(SCHEMA, relationship.obj.name), sql.Identifier(relationship.alias),
                sql.Identifier(relationship.alias, "Id"), sql.Identifier(holder_alias, reference.name)))
        return sql.Composed(joins)

    def relationships_by_chain(self) -> dict[tuple[str, ...], Relationship]:
        return {relationship.names: relationship for relationship in self.relationships}

    def _selection(self) -> sql.Composable:
        """The root Id, each joined parent's Id (a null one means no parent), then the selected columns."""
        parts = [sql.Identifier("t0", "Id")]
        parts += [sql.Identifier(relationship.alias, "Id") for relationship in self.relationships]
        parts += [sql.Identifier(column.alias, column.field.name) for column in self.columns]
        return sql.SQL(", ").join(parts)

    def _from(self) -> sql.Composable:
        return sql.SQL("{} as t0{}").format(sql.Identifier(SCHEMA, self.obj.name), self._joins())

    def _window(self) -> sql.Composable:
        return sql.SQL(" limit {} offset {}").format(sql.Placeholder("limit"), sql.Placeholder("offset"))

    def _window_params(self) -> dict[str, Any]:
        return {**self.params, "limit": self.limit, "offset": self.offset}

    def select_sql(self) -> sql.Composable:
        return sql.SQL("select {} from {} where {} order by {}{}").format(
            self._selection(), self._from(), self.where, self.order, self._window())

    def count_sql(self) -> sql.Composable:
        return sql.SQL("select count(*) from (select 1 from {} where {}{}) as matched").format(
            self._from(), self.where, self._window())

    # running

    def count(self, conn) -> int:
        return conn.execute(self.count_sql(), self._window_params()).fetchone()[0]

    def rows(self, conn) -> list[tuple]:
        return conn.execute(self.select_sql(), self._window_params()).fetchall()

    def records(self, conn) -> list[dict]:
        """Every matching record as Salesforce's JSON (for small results; pages go through cursors)."""
        return [self.record(row) for row in self.rows(conn)]

    # results

    def record(self, row: tuple) -> dict:
        """A result row as Salesforce's JSON record: attributes, fields, parents as nested records or null."""
        parent_ids = dict(zip(self.relationships_by_chain(), row[1:1 + len(self.relationships)], strict=True))
        values = row[1 + len(self.relationships):]
        record = {"attributes": self.attributes(self.obj, row[0])}
        for column, value in zip(self.columns, values, strict=True):
            target = record
            for depth in range(1, len(column.relationships) + 1):
                chain = column.relationships[:depth]
                name = chain[-1]
                if parent_ids[chain] is None:
                    target.setdefault(name, None)
                    target = None
                    break
                if name not in target:
                    target[name] = {"attributes": self.attributes(self.relationships_by_chain()[chain].obj,
                                                                  parent_ids[chain])}
                target = target[name]
            if target is not None:
                target[column.field.name] = to_json(column.field, value)
        return record

    def attributes(self, obj: SObject, record_id: str) -> dict:
        return {"type": obj.name, "url": f"/services/data/v{self.api_version}/sobjects/{obj.name}/{record_id}"}

    def csv_header(self) -> list[str]:
        return [column.label for column in self.columns]

    def csv_row(self, row: tuple) -> list[str]:
        """A result row as Bulk API 2.0 CSV values: booleans true/false, nulls (and missing parents) empty."""
        values = row[1 + len(self.relationships):]
        return [csv_value(column.field, value) for column, value in zip(self.columns, values, strict=True)]


def csv_value(f: Field, value: Any) -> str:
    if value is None:
        return ""
    if f.type == "boolean":
        return "true" if value else "false"
    if f.type == "datetime":
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(to_json(f, value))


def compile_query(text: str, objects: dict[str, SObject] | None = None, *, include_deleted: bool = False,
                  today: date | None = None, api_version: str = API_VERSION) -> Query:
    """The SOQL `text` compiled against the catalog `objects`.

    Raises ApiError: MALFORMED_QUERY (syntax), INVALID_TYPE (unknown object), INVALID_FIELD (unknown field or
    relationship, or a literal of the wrong type). Without `include_deleted` deleted records are left out.
    `today` anchors TODAY, LAST_N_DAYS:n and the like (default: the current UTC date).
    """
    statement = parse(text)
    compiler = _Compiler(statement, objects or OBJECTS_BY_NAME, today or datetime.now(UTC).date())
    columns = []
    seen = set()
    for path in statement.paths:
        chain, f, alias = compiler.resolve(path)
        key = (*(name.lower() for name in chain), f.name.lower())
        if key in seen:
            raise ApiError(400, "MALFORMED_QUERY", f"duplicate field selected: {'.'.join((*chain, f.name))}")
        seen.add(key)
        columns.append(Column(chain, f, alias))
    conditions = [] if include_deleted else [sql.SQL('t0."IsDeleted" is not true')]
    if statement.where is not None:
        conditions.append(compiler.condition(statement.where))
    if statement.offset is not None and statement.offset > MAX_OFFSET:
        raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                       f"Maximum SOQL offset allowed is {MAX_OFFSET}; the query asks for {statement.offset}.")
    order = []
    for item in statement.order:
        _chain, f, alias = compiler.resolve(item.path)
        order.append(sql.SQL("{} {} nulls {}").format(sql.Identifier(alias, f.name),
                                                      sql.SQL("desc" if item.descending else "asc"),
                                                      sql.SQL("first" if item.nulls_first else "last")))
    order.append(sql.Identifier("t0", "Id"))  # a stable order for paging
    where = sql.SQL(" and ").join(conditions) if conditions else sql.SQL("true")
    return Query(text, compiler.obj, statement.count_only, columns, list(compiler.relationships.values()),
                 where, sql.SQL(", ").join(order), statement.limit, statement.offset or 0, compiler.params,
                 api_version, include_deleted, ordered=bool(statement.order))


# --- Cursors: stored results read page by page ------------------------------------------------------------

CURSOR_SCHEMA_SQL = """
create schema if not exists sf_meta;
create sequence if not exists sf_meta.query_cursor_seq minvalue 0 start 0;
create table if not exists sf_meta.query_cursors (
    id text primary key,
    soql text not null,
    include_deleted boolean not null,
    api_version text not null,
    total_size integer not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create unlogged table if not exists sf_meta.query_cursor_rows (
    cursor_id text not null,
    position integer not null,
    record_id text not null,
    primary key (cursor_id, position)
);
"""


def ensure_schema(conn) -> None:
    """Create the cursor tables in `sf_meta` if missing (idempotent)."""
    conn.execute(CURSOR_SCHEMA_SQL)


@dataclass(frozen=True)
class Cursor:
    id: str
    total_size: int
    query: Query


def new_cursor_id(conn) -> str:
    return make_id(CURSOR_KEY_PREFIX, conn.execute("select nextval('sf_meta.query_cursor_seq')").fetchone()[0])


def open_cursor(conn, query: Query, lifetime: timedelta, cursor_id: str | None = None) -> Cursor:
    """Store the query's ordered record Ids (its ORDER BY, then Id) under a cursor; expired cursors are dropped."""
    expire_cursors(conn)
    cursor_id = cursor_id or new_cursor_id(conn)
    stored = conn.execute(sql.SQL(
        "insert into sf_meta.query_cursor_rows (cursor_id, position, record_id) "
        "select {cursor}, row_number() over (order by {order}) - {offset}, t0.\"Id\" "
        "from {tables} where {where} order by {order}{window}").format(
        cursor=sql.Placeholder("cursor"), order=query.order, offset=sql.Placeholder("offset"),
        tables=query._from(), where=query.where, window=query._window()),
        {**query._window_params(), "cursor": cursor_id}).rowcount
    conn.execute("insert into sf_meta.query_cursors (id, soql, include_deleted, api_version, total_size, expires_at) "
                 "values (%s, %s, %s, %s, %s, now() + %s)",
                 (cursor_id, query.text, query.include_deleted, query.api_version, stored, lifetime))
    return Cursor(cursor_id, stored, query)


def find_cursor(conn, cursor_id: str, objects: dict[str, SObject] | None = None,
                extend: timedelta | None = None) -> Cursor | None:
    """The stored cursor (its query compiled again), or None when unknown or expired."""
    row = conn.execute("select soql, include_deleted, api_version, total_size from sf_meta.query_cursors "
                       "where id = %s and expires_at > now()", (cursor_id,)).fetchone()
    if row is None:
        return None
    if extend is not None:
        conn.execute("update sf_meta.query_cursors set expires_at = now() + %s where id = %s", (extend, cursor_id))
    soql_text, include_deleted, api_version, total = row
    return Cursor(cursor_id, total, compile_query(soql_text, objects, include_deleted=include_deleted,
                                                  api_version=api_version))


def cursor_page_sql(query: Query) -> sql.Composable:
    """Rows at positions start < p <= stop of a stored cursor, in order, with their current values."""
    return sql.SQL(
        "select {selection} from sf_meta.query_cursor_rows as c join {table} as t0 on t0.\"Id\" = c.record_id{joins} "
        "where c.cursor_id = %(cursor)s and c.position > %(start)s and c.position <= %(stop)s "
        "order by c.position").format(selection=query._selection(), table=sql.Identifier(SCHEMA, query.obj.name),
                                      joins=query._joins())


def read_cursor(conn, cursor: Cursor, start: int, stop: int) -> list[tuple]:
    return conn.execute(cursor_page_sql(cursor.query), {"cursor": cursor.id, "start": start, "stop": stop}).fetchall()


def close_cursor(conn, cursor_id: str) -> None:
    conn.execute("delete from sf_meta.query_cursor_rows where cursor_id = %s", (cursor_id,))
    conn.execute("delete from sf_meta.query_cursors where id = %s", (cursor_id,))


def expire_cursors(conn) -> None:
    expired = [row[0] for row in conn.execute("select id from sf_meta.query_cursors where expires_at <= now()")]
    if expired:
        conn.execute("delete from sf_meta.query_cursor_rows where cursor_id = any(%s)", (expired,))
        conn.execute("delete from sf_meta.query_cursors where id = any(%s)", (expired,))
