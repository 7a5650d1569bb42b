//! The events every workload writes, byte for byte the same for chronik and for the raw
//! baseline, and the raw table's insert statements.

use chronik::EventData;
use serde::Serialize;
use uuid::Uuid;

pub const EVENT_TYPE: &str = "MoneyDeposited";
pub const CONTENT_TYPE: &str = "application/json";

/// The payload of one event: JSON of about 100 bytes.
#[derive(Serialize)]
struct Deposit<'a> {
    account: String,
    amount: u64,
    note: &'a str,
}

/// The `n`th event's data and metadata, as JSON bytes.
pub fn payload(n: u64) -> (Vec<u8>, Vec<u8>) {
    let data = Deposit {
        account: format!("acc-{}", n % 1_000),
        amount: n % 10_000,
        note: "monthly salary, transferred by standing order",
    };
    let data = serde_json::to_vec(&data).expect("a struct of strings and numbers serializes");
    let metadata = format!(r#"{{"user":"u-{}","source":"bench"}}"#, n % 50).into_bytes();
    (data, metadata)
}

/// The `n`th event for chronik.
pub fn event(n: u64) -> EventData {
    let (data, metadata) = payload(n);
    EventData::from_bytes(EVENT_TYPE, CONTENT_TYPE, data).with_metadata_bytes(metadata)
}

/// `count` events starting with payload `first`.
pub fn events(first: u64, count: u64) -> Vec<EventData> {
    (first..first + count).map(event).collect()
}

/// One autocommitted multi-row insert into the raw table `table`, from column arrays.
pub fn insert_batch_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (position, event_id, stream_id, stream_uuid, stream_version, event_type, \
         content_type, correlation_id, causation_id, data, metadata) \
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[], \
         $6::text[], $7::text[], $8::uuid[], $9::uuid[], $10::bytea[], $11::bytea[])"
    )
}

/// One autocommitted one-row insert into the raw table `table`.
pub fn insert_row_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (position, event_id, stream_id, stream_uuid, stream_version, event_type, \
         content_type, correlation_id, causation_id, data, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    )
}

/// Column arrays of one raw batch.
#[derive(Default)]
pub struct Rows {
    pub position: Vec<i64>,
    pub event_id: Vec<Uuid>,
    pub stream_id: Vec<i64>,
    pub stream_uuid: Vec<String>,
    pub stream_version: Vec<i64>,
    pub event_type: Vec<&'static str>,
    pub content_type: Vec<&'static str>,
    pub correlation_id: Vec<Option<Uuid>>,
    pub causation_id: Vec<Option<Uuid>>,
    pub data: Vec<Vec<u8>>,
    pub metadata: Vec<Option<Vec<u8>>>,
}

impl Rows {
    /// Adds the row of payload `n` at `position`, version `version` of stream `stream_id`.
    pub fn push(&mut self, position: i64, stream_id: i64, stream: &str, version: i64, n: u64) {
        let (data, metadata) = payload(n);
        self.position.push(position);
        self.event_id.push(Uuid::new_v4());
        self.stream_id.push(stream_id);
        self.stream_uuid.push(stream.to_string());
        self.stream_version.push(version);
        self.event_type.push(EVENT_TYPE);
        self.content_type.push(CONTENT_TYPE);
        self.correlation_id.push(None);
        self.causation_id.push(None);
        self.data.push(data);
        self.metadata.push(Some(metadata));
    }

    /// Binds the arrays to [`insert_batch_sql`].
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.position)
            .bind(&self.event_id)
            .bind(&self.stream_id)
            .bind(&self.stream_uuid)
            .bind(&self.stream_version)
            .bind(&self.event_type)
            .bind(&self.content_type)
            .bind(&self.correlation_id)
            .bind(&self.causation_id)
            .bind(&self.data)
            .bind(&self.metadata)
    }
}
