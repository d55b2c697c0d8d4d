-- Servicetrail analytics on ClickHouse: every event of the four topics, fed by the Kafka engine.
-- Apply with: clickhouse-client --multiquery < 01_events.sql (then 02_facts.sql). Replace the broker list and
-- the consumer group below (each ClickHouse cluster its own group, as each analytics replica has its own).
--
-- Records are CloudEvents in Kafka's binary mode: the value is the event's data (JSON), the attributes are
-- headers (ce_id, ce_type, ce_subject, ce_time, ce_recordedat, ce_sequence…). The materialized view reads them
-- into servicetrail_events, a ReplacingMergeTree keyed by the event id: a record delivered twice is one row
-- once merged (query with FINAL, as 02_facts.sql does). `time` (business time) and `recordedat` (when the
-- source stored it) are both kept: views `as_of` a moment filter on recordedat. No customer name or phone.

CREATE TABLE IF NOT EXISTS servicetrail_events
(
    event_id      String,
    type          LowCardinality(String),
    topic         LowCardinality(String),
    subject       String,
    request_id    Nullable(String),
    job_id        Nullable(String),
    time          DateTime64(6, 'UTC'),
    recordedat    DateTime64(6, 'UTC'),
    sequence      Int64,
    dealer_id     Nullable(String),
    region        Nullable(String),
    product_line  Nullable(String),
    mode          Nullable(String),
    priority      Nullable(String),
    center_id     Nullable(String),
    technician_id Nullable(String),
    fixed         Nullable(UInt8),
    reason        Nullable(String),
    kind          Nullable(String),
    satisfaction  Nullable(Int32),
    nps           Nullable(Int32),
    complaint_id  Nullable(String),
    data          String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)   -- a duplicate has the same time, so it lands in the same partition and merges
ORDER BY event_id;

CREATE TABLE IF NOT EXISTS servicetrail_events_kafka
(
    raw String
)
ENGINE = Kafka
SETTINGS kafka_broker_list = 'kafka:9092',
         kafka_topic_list = 'intake.events,dispatch.events,warranty.events,complaints.events',
         kafka_group_name = 'clickhouse-servicetrail',
         kafka_format = 'RawBLOB',
         kafka_num_consumers = 1;

-- One SELECT reads a Kafka record (value `raw`, `_topic`, `_headers`) into an event row.
CREATE MATERIALIZED VIEW IF NOT EXISTS servicetrail_events_mv TO servicetrail_events AS
SELECT
    _headers.value[indexOf(_headers.name, 'ce_id')]                                                       AS event_id,
    _headers.value[indexOf(_headers.name, 'ce_type')]                                                     AS type,
    _topic                                                                AS topic,
    _headers.value[indexOf(_headers.name, 'ce_subject')]                                                  AS subject,
    nullIf(JSONExtractString(raw, 'request_id'), '')                                                    AS request_id,
    nullIf(JSONExtractString(raw, 'job_id'), '')                                                        AS job_id,
    parseDateTime64BestEffort(_headers.value[indexOf(_headers.name, 'ce_time')], 6, 'UTC')                AS time,
    parseDateTime64BestEffort(_headers.value[indexOf(_headers.name, 'ce_recordedat')], 6, 'UTC')          AS recordedat,
    toInt64OrZero(_headers.value[indexOf(_headers.name, 'ce_sequence')])                                  AS sequence,
    nullIf(JSONExtractString(raw, 'dealer_id'), '')                                                     AS dealer_id,
    coalesce(nullIf(JSONExtractString(raw, 'region'), ''), nullIf(JSONExtractString(raw, 'customer', 'region'), ''))          AS region,
    coalesce(nullIf(JSONExtractString(raw, 'product_line'), ''), nullIf(JSONExtractString(raw, 'product', 'product_line'), '')) AS product_line,
    nullIf(JSONExtractString(raw, 'mode'), '')                                                          AS mode,
    nullIf(JSONExtractString(raw, 'priority'), '')                                                      AS priority,
    nullIf(JSONExtractString(raw, 'center_id'), '')                                                     AS center_id,
    nullIf(JSONExtractString(raw, 'technician_id'), '')                                                 AS technician_id,
    if(JSONHas(raw, 'fixed'), toUInt8(JSONExtractBool(raw, 'fixed')), NULL) AS fixed,
    if(JSONHas(raw, 'fixed') AND NOT JSONExtractBool(raw, 'fixed'), coalesce(nullIf(JSONExtractString(raw, 'reason'), ''), 'unspecified'), NULL)
                                                                          AS reason,
    nullIf(JSONExtractString(raw, 'kind'), '')                                                          AS kind,
    if(JSONHas(raw, 'satisfaction'), JSONExtractInt(raw, 'satisfaction'), NULL)          AS satisfaction,
    if(JSONHas(raw, 'nps') AND JSONType(raw, 'nps') != 'Null', JSONExtractInt(raw, 'nps'), NULL) AS nps,
    nullIf(JSONExtractString(raw, 'complaint_id'), '')                                                  AS complaint_id,
    -- the customer's name, phone and e-mail never stored
    if(JSONHas(raw, 'customer'),
       replaceRegexpAll(raw, '"(name|phone|email)"\\s*:\\s*"(?:[^"\\\\]|\\\\.)*"', '"\\1":null'), raw) AS data
FROM servicetrail_events_kafka;
