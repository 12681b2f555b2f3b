"""The Salesforce sandbox's data model: which sObjects exist, their fields, and how values travel.

This is the org's metadata, the one place the sandbox server (describe, validation, storage), its SOQL
engine and its seeding all read. Each object is stored as one table in the sandbox database's `sf`
schema, named and columned exactly as the API names (quoted, so `sf."Account"."Tier__c"`).

Field types are Salesforce's own (`describe` reports them as they are); `POSTGRES_TYPES` says how each
is stored. Values cross the API as Salesforce's JSON: dates `2026-11-20`, datetimes
`2026-11-20T01:02:03.000+0000` (UTC), numbers as JSON numbers, booleans, null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

SCHEMA = "sf"
API_VERSION = "59.0"

POSTGRES_TYPES = {
    "id": "text", "reference": "text", "string": "text", "textarea": "text", "picklist": "text",
    "email": "text", "phone": "text", "url": "text",
    "boolean": "boolean", "date": "date", "datetime": "timestamptz",
    "double": "numeric", "currency": "numeric", "percent": "numeric", "int": "integer",
}
TEXT_TYPES = {"id", "reference", "string", "textarea", "picklist", "email", "phone", "url"}
NUMBER_TYPES = {"double", "currency", "percent", "int"}


class FieldValueError(ValueError):
    """A value that does not fit its field: Salesforce answers INVALID_TYPE_ON_FIELD_IN_RECORD."""

    error_code = "INVALID_TYPE_ON_FIELD_IN_RECORD"


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str = ""
    nillable: bool = True  # False: required on create (REQUIRED_FIELD_MISSING)
    external_id: bool = False
    unique: bool = False
    createable: bool = True
    updateable: bool = True
    length: int = 0  # text fields: the longest value accepted
    reference_to: str | None = None  # reference fields: the parent object
    relationship_name: str | None = None  # reference fields: how SOQL names the parent (Account.Name)
    picklist: tuple[str, ...] = ()
    custom: bool = False

    def __post_init__(self) -> None:
        if self.type not in POSTGRES_TYPES:
            raise ValueError(f"{self.name}: unknown field type {self.type!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.removesuffix("__c").replace("_", " "))
        if not self.length and self.type in TEXT_TYPES:
            object.__setattr__(self, "length", {"id": 18, "reference": 18, "textarea": 32_000}.get(self.type, 255))
        object.__setattr__(self, "custom", self.name.endswith("__c"))

    @property
    def postgres_type(self) -> str:
        return POSTGRES_TYPES[self.type]


@dataclass(frozen=True)
class SObject:
    name: str
    key_prefix: str  # the first three characters of every Id of this object
    label: str
    label_plural: str
    fields: tuple[Field, ...] = field(default_factory=tuple)

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def field(self, name: str) -> Field | None:
        """The field called `name`, matched case-insensitively as SOQL and the REST API do."""
        return self._fields_by_lower_name().get(name.lower())

    def _fields_by_lower_name(self) -> dict[str, Field]:
        return {f.name.lower(): f for f in self.fields}

    def relationship(self, name: str) -> Field | None:
        """The reference field whose relationship is called `name` (case-insensitive), e.g. Owner -> OwnerId."""
        lowered = name.lower()
        return next((f for f in self.fields if f.relationship_name and f.relationship_name.lower() == lowered), None)

    @property
    def external_id_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.external_id)

    def with_field(self, extra: Field) -> SObject:
        """This object with one more field (a custom field added at run time: schema drift)."""
        return SObject(self.name, self.key_prefix, self.label, self.label_plural, (*self.fields, extra))


def system_fields(owned: bool) -> tuple[Field, ...]:
    """Fields every object has; `owned` objects also have an owner (a User)."""
    fields = [
        Field("Id", "id", "Record ID", nillable=False, createable=False, updateable=False),
        Field("IsDeleted", "boolean", "Deleted", nillable=False, createable=False, updateable=False),
        Field("CreatedDate", "datetime", "Created Date", nillable=False, createable=False, updateable=False),
        Field("CreatedById", "reference", "Created By ID", nillable=False, createable=False, updateable=False,
              reference_to="User", relationship_name="CreatedBy"),
        Field("LastModifiedDate", "datetime", "Last Modified Date", nillable=False, createable=False,
              updateable=False),
        Field("LastModifiedById", "reference", "Last Modified By ID", nillable=False, createable=False,
              updateable=False, reference_to="User", relationship_name="LastModifiedBy"),
        Field("SystemModstamp", "datetime", "System Modstamp", nillable=False, createable=False, updateable=False),
    ]
    if owned:
        # Defaults to the calling user on create, as in Salesforce.
        fields.append(Field("OwnerId", "reference", "Owner ID", reference_to="User", relationship_name="Owner"))
    return tuple(fields)


def account_lookup(label: str = "取引先") -> Field:
    return Field("Account__c", "reference", label, nillable=False, reference_to="Account",
                 relationship_name="Account__r")


def playbook_firing_key() -> Field:
    """The platform's key of the playbook firing that created a Task or Opportunity (upserted by it, so a
    re-run of the same firing updates its record instead of creating a second one)."""
    return Field("Playbook_Firing_Key__c", "string", "プレイブック発火キー", external_id=True, unique=True)


OPPORTUNITY_STAGES = {
    # stage: (IsClosed, IsWon, default probability %)
    "Prospecting": (False, False, 10),
    "Qualification": (False, False, 20),
    "Proposal": (False, False, 50),
    "Negotiation": (False, False, 75),
    "Closed Won": (True, True, 100),
    "Closed Lost": (True, False, 0),
}
TASK_STATUSES = {"Not Started": False, "In Progress": False, "Waiting": False, "Deferred": False,
                 "Completed": True}  # status: IsClosed
ACTIVITY_TYPES = ("Call", "Meeting", "Email", "QBR", "Other")

OBJECTS: tuple[SObject, ...] = (
    SObject("User", "005", "ユーザ", "ユーザ", (
        *system_fields(owned=False),
        Field("Username", "string", "ユーザ名", nillable=False, unique=True),
        Field("FirstName", "string", "名"),
        Field("LastName", "string", "姓", nillable=False),
        Field("Name", "string", "氏名", createable=False, updateable=False),  # LastName + " " + FirstName
        Field("Email", "email", "メール", nillable=False),
        Field("Title", "string", "役職"),
        Field("Department", "string", "部署"),
        Field("IsActive", "boolean", "有効", nillable=False),
        Field("ManagerId", "reference", "マネージャ", reference_to="User", relationship_name="Manager"),
    )),
    SObject("Account", "001", "取引先", "取引先", (
        *system_fields(owned=True),
        Field("Name", "string", "取引先名", nillable=False),
        Field("Industry", "picklist", "業種"),
        Field("Type", "picklist", "種別", picklist=("Customer", "Former Customer", "Prospect", "Partner")),
        Field("NumberOfEmployees", "int", "従業員数"),
        Field("Tier__c", "picklist", "Tier", picklist=("Tier 1", "Tier 2", "Tier 3")),
        Field("Growth_Potential__c", "picklist", "成長ポテンシャル", picklist=("High", "Medium", "Low")),
        Field("Nexpro_Tenant_Id__c", "string", "Nexpro テナントID", external_id=True, length=20),
        Field("Board_Client_Id__c", "string", "board 顧客ID", external_id=True, length=20),
        Field("Contract_Start_Date__c", "date", "契約開始日"),
        Field("Renewal_Date__c", "date", "更新日"),
        Field("Annual_Contract_Value__c", "currency", "年間契約金額"),
        # Written back by the platform (activation).
        Field("Health_Score__c", "double", "ヘルススコア"),
        Field("Health_Status__c", "picklist", "ヘルスステータス", picklist=("Green", "Yellow", "Red")),
        Field("Health_Trend__c", "picklist", "ヘルストレンド", picklist=("Up", "Flat", "Down")),
        Field("Health_Reasons__c", "textarea", "ヘルス要因"),
        Field("Health_Score_Date__c", "date", "ヘルススコア算出日"),
    )),
    SObject("Contact", "003", "取引先責任者", "取引先責任者", (
        *system_fields(owned=True),
        Field("AccountId", "reference", "取引先", reference_to="Account", relationship_name="Account"),
        Field("FirstName", "string", "名"),
        Field("LastName", "string", "姓", nillable=False),
        Field("Name", "string", "氏名", createable=False, updateable=False),
        Field("Email", "email", "メール"),
        Field("Phone", "phone", "電話"),
        Field("Title", "string", "役職"),
        Field("Department", "string", "部署"),
        Field("Key_Person__c", "boolean", "キーパーソン", nillable=False),
        Field("Is_Active__c", "boolean", "在籍", nillable=False),
    )),
    SObject("Opportunity", "006", "商談", "商談", (
        *system_fields(owned=True),
        Field("Name", "string", "商談名", nillable=False),
        Field("AccountId", "reference", "取引先", reference_to="Account", relationship_name="Account"),
        Field("Type", "picklist", "種別", picklist=("New", "Renewal", "Upsell", "Cross-sell")),
        Field("StageName", "picklist", "フェーズ", nillable=False, picklist=tuple(OPPORTUNITY_STAGES)),
        Field("Amount", "currency", "金額"),
        Field("CloseDate", "date", "完了予定日", nillable=False),
        Field("Probability", "percent", "確度"),
        # Derived from StageName on every write, as in Salesforce.
        Field("IsClosed", "boolean", "完了", nillable=False, createable=False, updateable=False),
        Field("IsWon", "boolean", "受注", nillable=False, createable=False, updateable=False),
        Field("Description", "textarea", "説明"),
        # When the deal's revenue starts: the contract start (New), the renewal date (Renewal), the plan
        # change (Upsell). A lost renewal carries the renewal date it will not reach.
        Field("Service_Start_Date__c", "date", "サービス開始日"),
        playbook_firing_key(),
    )),
    SObject("Task", "00T", "ToDo", "ToDo", (
        *system_fields(owned=True),
        Field("Subject", "string", "件名"),
        Field("WhoId", "reference", "名前", reference_to="Contact", relationship_name="Who"),
        Field("WhatId", "reference", "関連先", reference_to="Account", relationship_name="What"),
        Field("AccountId", "reference", "取引先", reference_to="Account", relationship_name="Account"),
        Field("ActivityDate", "date", "期日"),
        Field("Status", "picklist", "状況", nillable=False, picklist=tuple(TASK_STATUSES)),
        Field("Priority", "picklist", "優先度", nillable=False, picklist=("High", "Normal", "Low")),
        Field("Type", "picklist", "種別", picklist=ACTIVITY_TYPES),
        Field("IsClosed", "boolean", "完了", nillable=False, createable=False, updateable=False),  # from Status
        Field("CompletedDateTime", "datetime", "完了日時", createable=False, updateable=False),  # from Status
        Field("Description", "textarea", "コメント"),
        playbook_firing_key(),
    )),
    SObject("Event", "00U", "行動", "行動", (
        *system_fields(owned=True),
        Field("Subject", "string", "件名"),
        Field("WhoId", "reference", "名前", reference_to="Contact", relationship_name="Who"),
        Field("WhatId", "reference", "関連先", reference_to="Account", relationship_name="What"),
        Field("AccountId", "reference", "取引先", reference_to="Account", relationship_name="Account"),
        Field("StartDateTime", "datetime", "開始", nillable=False),
        Field("EndDateTime", "datetime", "終了", nillable=False),
        Field("ActivityDate", "date", "日付"),
        Field("DurationInMinutes", "int", "期間（分）"),
        Field("Type", "picklist", "種別", picklist=ACTIVITY_TYPES),
        Field("Description", "textarea", "説明"),
    )),
    SObject("Usage__c", "a01", "利用状況", "利用状況", (
        *system_fields(owned=True),
        Field("Name", "string", "利用状況名"),
        account_lookup(),
        Field("Usage_Key__c", "string", "利用状況キー", external_id=True, unique=True, length=80),
        Field("Usage_Date__c", "date", "対象日", nillable=False),
        Field("Login_Days_30d__c", "double", "ログイン日数（30日）"),
        Field("Webinars_Held_30d__c", "double", "ウェビナー開催数（30日）"),
        Field("Attendees_30d__c", "double", "参加者数（30日）"),
        Field("Data_Transfer_GB__c", "double", "データ転送量（GB）"),
    )),
    SObject("Outcome_Goal__c", "a02", "成果目標", "成果目標", (
        *system_fields(owned=True),
        Field("Name", "string", "成果目標名"),
        account_lookup(),
        Field("Goal_Type__c", "picklist", "目標種別",
              picklist=("リード獲得数", "参加者数", "商談化数", "採用応募数", "研修修了率")),
        Field("Target_Value__c", "double", "目標値", nillable=False),
        Field("Success_Criterion__c", "string", "成功基準"),
        Field("Measurement_Method__c", "string", "測定方法"),
        Field("Status__c", "picklist", "状況", nillable=False, picklist=("Active", "Achieved", "Cancelled")),
        Field("Start_Date__c", "date", "開始日"),
        Field("End_Date__c", "date", "終了日"),
    )),
    SObject("Outcome_Result__c", "a03", "成果実績", "成果実績", (
        *system_fields(owned=True),
        Field("Name", "string", "成果実績名"),
        Field("Outcome_Goal__c", "reference", "成果目標", nillable=False, reference_to="Outcome_Goal__c",
              relationship_name="Outcome_Goal__r"),
        account_lookup(),
        Field("Period__c", "date", "対象月", nillable=False),
        Field("Actual_Value__c", "double", "実績値", nillable=False),
        Field("Achievement_Rate__c", "percent", "達成率"),
        Field("Comment__c", "textarea", "コメント"),
    )),
    SObject("Health_Score__c", "a04", "ヘルススコア", "ヘルススコア", (
        *system_fields(owned=True),
        Field("Name", "string", "ヘルススコア名"),
        account_lookup(),
        Field("Health_Score_Key__c", "string", "ヘルススコアキー", external_id=True, unique=True, length=80),
        Field("Score_Date__c", "date", "算出日", nillable=False),
        Field("Total_Score__c", "double", "総合スコア"),
        Field("Usage_Score__c", "double", "利用スコア"),
        Field("Outcome_Score__c", "double", "成果スコア"),
        Field("Relationship_Score__c", "double", "関係スコア"),
        Field("Contract_Score__c", "double", "契約スコア"),
        Field("Status__c", "picklist", "ステータス", picklist=("Green", "Yellow", "Red")),
    )),
    SObject("Meeting_Note__c", "a05", "議事録", "議事録", (
        *system_fields(owned=True),
        Field("Name", "string", "議事録名"),
        account_lookup(),
        Field("Meeting_Date__c", "date", "実施日", nillable=False),
        Field("Attendees__c", "textarea", "参加者"),
        Field("Agenda__c", "textarea", "議題"),
        Field("Decisions__c", "textarea", "決定事項"),
        Field("Next_Action__c", "textarea", "ネクストアクション"),
    )),
    SObject("Revenue__c", "a06", "売上情報", "売上情報", (
        *system_fields(owned=True),
        Field("Name", "string", "売上情報名"),
        account_lookup(),
        Field("Revenue_Key__c", "string", "売上情報キー", external_id=True, unique=True, length=80),
        Field("Month__c", "date", "対象月", nillable=False),
        Field("MRR__c", "currency", "MRR"),
        Field("Invoiced_Amount__c", "currency", "請求額"),
        Field("Plan__c", "string", "プラン"),
    )),
)
OBJECTS_BY_NAME = {obj.name: obj for obj in OBJECTS}
OBJECTS_BY_PREFIX = {obj.key_prefix: obj for obj in OBJECTS}


def find_object(name: str, objects: dict[str, SObject] | None = None) -> SObject | None:
    """The object called `name`, case-insensitively (the REST API and SOQL accept any case)."""
    lowered = name.lower()
    return next((obj for obj in (objects or OBJECTS_BY_NAME).values() if obj.name.lower() == lowered), None)


# --- Ids -------------------------------------------------------------------------------------------------

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id_suffix(id15: str) -> str:
    """The three characters Salesforce appends to a 15-character Id to make it case-insensitive."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, character in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= character <= "Z":
                bits |= 1 << position
        suffix += CHECKSUM_ALPHABET[bits]
    return suffix


def make_id(key_prefix: str, number: int) -> str:
    """The 18-character Id of the `number`th record of the object with `key_prefix`: prefix, pod, counter."""
    if number < 0:
        raise ValueError("record numbers start at 0")
    digits = ""
    while number or not digits:
        number, remainder = divmod(number, 62)
        digits = BASE62[remainder] + digits
    if len(digits) > 9:
        raise ValueError("record number too large for an Id")
    id15 = f"{key_prefix}5g0{digits.rjust(9, '0')}"
    return id15 + id_suffix(id15)


def is_valid_id(value: str) -> bool:
    return (isinstance(value, str) and len(value) in (15, 18) and all(c in BASE62 for c in value)
            and (len(value) == 15 or value[15:] == id_suffix(value[:15])))


def to_id18(value: str) -> str:
    """An Id in its 18-character form (a 15-character Id gains its suffix)."""
    return value if len(value) == 18 else value + id_suffix(value)


# --- Values ----------------------------------------------------------------------------------------------


def format_datetime(moment: datetime) -> str:
    """Salesforce's datetime format: UTC, milliseconds, `+0000`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def to_json(f: Field, value):
    """A stored value as the REST API returns it."""
    if value is None:
        return None
    if f.type == "datetime":
        return format_datetime(value)
    if f.type == "date":
        return value.isoformat()
    if f.type == "int":
        return int(value)
    if f.type in NUMBER_TYPES:
        return float(value)
    return value


def parse_datetime(text: str) -> datetime:
    """Accepts the forms Salesforce accepts: `2026-11-20T01:02:03Z`, `…03.000+0000`, `…03+09:00`."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    if len(cleaned) >= 5 and cleaned[-5] in "+-" and cleaned[-3] != ":":
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]  # +0000 -> +00:00
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None:
        raise ValueError("a datetime needs a time zone")
    return moment


def from_json(f: Field, value):
    """A value received from a client (JSON or CSV text), checked and converted for storage.

    Raises FieldValueError naming the field when the value does not fit its type.
    """
    if value is None or (isinstance(value, str) and value == "" and f.type not in {"string", "textarea"}):
        return None
    try:
        if f.type in TEXT_TYPES:
            if not isinstance(value, str):
                raise ValueError
            if f.type in {"id", "reference"} and not is_valid_id(value):
                raise ValueError
            if len(value) > f.length:
                raise FieldValueError(f"{f.name}: data value too large: {value[:40]!r}... (max length={f.length})")
            return to_id18(value) if f.type in {"id", "reference"} else value
        if f.type == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "false"}:
                return value.lower() == "true"
            raise ValueError
        if f.type == "date":
            return value if isinstance(value, date) and not isinstance(value, datetime) else date.fromisoformat(value)
        if f.type == "datetime":
            return value if isinstance(value, datetime) else parse_datetime(value)
        if isinstance(value, bool):
            raise ValueError
        number = Decimal(str(value))
        if not number.is_finite():
            raise ValueError
        if f.type == "int":
            if number != number.to_integral_value():
                raise ValueError
            return int(number)
        return number
    except FieldValueError:
        raise
    except (ValueError, TypeError, InvalidOperation):
        raise FieldValueError(f"{f.name}: value not of required type: {value!r} (expected {f.type})") from None


# --- Storage ---------------------------------------------------------------------------------------------


def table_name(obj: SObject) -> str:
    """The object's table, quoted: `sf."Account"`."""
    return f'{SCHEMA}."{obj.name}"'


def id_sequence(obj: SObject) -> str:
    """The sequence numbering the object's records (make_id turns its values into Ids)."""
    return f'{SCHEMA}."{obj.name}_id_seq"'


def ddl(objects: dict[str, SObject] | None = None) -> str:
    """SQL creating every object's table and Id sequence if missing, and adding columns for new fields."""
    statements = [f"create schema if not exists {SCHEMA};"]
    for obj in (objects or OBJECTS_BY_NAME).values():
        statements.append(f"create sequence if not exists {id_sequence(obj)} minvalue 0 start 0;")
        statements.append(f'create table if not exists {table_name(obj)} ("Id" text primary key);')
        statements.extend(f'alter table {table_name(obj)} add column if not exists "{f.name}" {f.postgres_type};'
                          for f in obj.fields if f.name != "Id")
        statements.append(f'create index if not exists "{obj.name}_modstamp" on {table_name(obj)} ("SystemModstamp");')
    return "\n".join(statements)
