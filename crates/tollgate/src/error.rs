#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] tollgate_store::StoreError),
    #[error(transparent)]
    Prices(#[from] tollgate_ledger::PriceError),
    #[error("refusing to start: {0}. Set a strong master key (general_settings.master_key or LITELLM_MASTER_KEY, e.g. `sk-` followed by 32+ random characters), or remove it to let Tollgate generate one.")]
    WeakMasterKey(String),
    #[error("the stored master key hash is damaged; run `tollgate master-key rotate`")]
    CorruptMasterKeyHash,
    #[error(transparent)]
    Random(#[from] tollgate_domain::secret::RandomError),
    #[error("the spend journal cannot be used: {0}. Fix the folder's permissions or free disk space (TOLLGATE_SPEND_JOURNAL_DIR moves it; TOLLGATE_SPEND_JOURNAL=off turns it off)")]
    Journal(#[source] Box<tollgate_ledger::JournalError>),
    #[error("cannot reach Redis at {0}: {1}. Check router_settings.redis_* or REDIS_URL, or remove them to run as a single instance")]
    Redis(String, #[source] tollgate_cluster::ClusterError),
    #[error("invalid setting: {0}")]
    Settings(String),
    #[error(transparent)]
    HttpClient(#[from] tollgate_proxy::upstream::ClientError),
    #[error(transparent)]
    Import(#[from] crate::import::litellm::ImportError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// The database could not be reached: the start waits for it rather than failing.
    pub fn is_database_unavailable(&self) -> bool {
        match self {
            StartError::Store(e) => e.is_unavailable(),
            StartError::Journal(e) => match e.as_ref() {
                tollgate_ledger::JournalError::Store(e) => e.is_unavailable(),
                _ => false,
            },
            _ => false,
        }
    }
}
