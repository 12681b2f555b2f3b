-- The Nexpro product database, as the webinar platform's application keeps it.
-- Timestamps are UTC (timestamptz); every table carries created_at / updated_at like a real app,
-- and a trigger bumps updated_at on each update so incremental extraction can follow changes.

create or replace function touch_updated_at() returns trigger language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end $$;

create table if not exists plans (
    plan_id                   integer primary key,
    plan_code                 text not null unique,
    plan_name                 text not null,
    webinars_per_month_limit  integer not null,
    attendees_per_webinar_limit integer not null,
    storage_gb_limit          integer not null,
    monthly_price_jpy         numeric(12, 0) not null,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);

create table if not exists tenants (
    tenant_id        bigint primary key,
    tenant_code      text not null unique,
    company_name     text not null,
    industry         text,
    plan_id          integer not null references plans (plan_id),
    status           text not null check (status in ('trial', 'active', 'suspended', 'cancelled')),
    contract_started_on date not null,
    cancelled_on     date,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

-- Which plan a tenant was on when: upgrades and downgrades close one row and open the next.
create table if not exists tenant_plans (
    tenant_plan_id   bigint primary key,
    tenant_id        bigint not null references tenants (tenant_id),
    plan_id          integer not null references plans (plan_id),
    started_on       date not null,
    ended_on         date,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists users (
    user_id          bigint primary key,
    tenant_id        bigint not null references tenants (tenant_id),
    email            text not null,
    display_name     text not null,
    role             text not null check (role in ('owner', 'admin', 'host', 'member')),
    is_active        boolean not null default true,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists login_events (
    login_event_id   bigint primary key,
    user_id          bigint not null,
    tenant_id        bigint not null,
    logged_in_at     timestamptz not null,
    user_agent       text,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists webinars (
    webinar_id       bigint primary key,
    tenant_id        bigint not null references tenants (tenant_id),
    host_user_id     bigint,
    title            text not null,
    webinar_type     text not null check (webinar_type in ('live', 'on_demand')),
    status           text not null check (status in ('scheduled', 'held', 'cancelled')),
    scheduled_start_at timestamptz not null,
    started_at       timestamptz,
    ended_at         timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists registrations (
    registration_id  bigint primary key,
    webinar_id       bigint not null,
    tenant_id        bigint not null,
    attendee_email   text not null,
    registered_at    timestamptz not null,
    attended         boolean not null default false,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists viewing_sessions (
    viewing_session_id bigint primary key,
    registration_id  bigint,
    webinar_id       bigint not null,
    tenant_id        bigint not null,
    joined_at        timestamptz not null,
    left_at          timestamptz,
    watch_seconds    integer not null,
    device           text,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists feature_events (
    feature_event_id bigint primary key,
    tenant_id        bigint not null,
    user_id          bigint,
    feature_key      text not null,
    occurred_at      timestamptz not null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists nps_responses (
    nps_response_id  bigint primary key,
    tenant_id        bigint not null,
    user_id          bigint,
    score            smallint not null check (score between 0 and 10),
    comment          text,
    responded_at     timestamptz not null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

create table if not exists data_transfer_daily (
    tenant_id        bigint not null,
    usage_date       date not null,
    bytes_transferred bigint not null,
    storage_bytes    bigint not null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    primary key (tenant_id, usage_date)
);

do $$
declare
    table_name text;
begin
    foreach table_name in array array[
        'plans', 'tenants', 'tenant_plans', 'users', 'login_events', 'webinars', 'registrations',
        'viewing_sessions', 'feature_events', 'nps_responses', 'data_transfer_daily'
    ] loop
        execute format('drop trigger if exists touch_updated_at on %I', table_name);
        execute format(
            'create trigger touch_updated_at before update on %I for each row execute function touch_updated_at()',
            table_name
        );
        execute format('create index if not exists %I on %I (updated_at)', table_name || '_updated_at_idx', table_name);
    end loop;
end $$;
