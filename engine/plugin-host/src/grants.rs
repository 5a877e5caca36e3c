//! What one destination may reach. Connector calls outside these grants fail with
//! `connector-error::permission-denied`, which the plugin sees.
//!
//! A Tencent-shaped action carries its own target and is its own grant (the action was
//! written by an authenticated administrator): `republish.topic` grants that topic (with
//! each `${var}` level as `+`), `forward.api` grants that URL's host and port (the hub's
//! `plugins.forward-hosts` limits which hosts a forward action may name at all).

use eddy_core::{Topic, TopicFilter};

/// The grants of one destination. Empty = nothing may be reached.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Topics `mqtt.publish` may publish to.
    pub mqtt_topics: Vec<TopicFilter>,
    /// Hosts `http.send` may call: `host`, `host:port`, or `*` for any.
    pub http_hosts: Vec<String>,
    /// The Kafka cluster `kafka.produce` writes to: its bootstrap broker list
    /// (`host:port,host:port`).
    pub kafka_brokers: Option<String>,
    /// Kafka topics `kafka.produce` may write.
    pub kafka_topics: Vec<String>,
    /// The Pulsar cluster `pulsar.send` writes to: its service URL (`pulsar://host:6650`).
    pub pulsar_url: Option<String>,
    /// Pulsar topics `pulsar.send` may write.
    pub pulsar_topics: Vec<String>,
    /// The database `sql.execute` runs on (`postgres://…` or `mysql://…`).
    pub sql_url: Option<String>,
    /// Tables `sql.execute` may write.
    pub sql_tables: Vec<String>,
}

impl Grants {
    /// The grant a republish topic template gives: every `${var}` level becomes `+`.
    pub fn for_republish(template: &str) -> Result<Self, String> {
        let filter = template
            .split('/')
            .map(|level| if level.contains("${") { "+" } else { level })
            .collect::<Vec<_>>()
            .join("/");
        let filter = TopicFilter::parse(&filter).map_err(|e| format!("topic {template:?}: {e}"))?;
        Ok(Self {
            mqtt_topics: vec![filter],
            ..Self::default()
        })
    }

    /// The grant a forward URL gives: its host and port.
    pub fn for_forward(api: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(api).map_err(|e| format!("forward api {api:?}: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("forward api {api:?} has no host"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("forward api {api:?} has no port"))?;
        Ok(Self {
            http_hosts: vec![format!("{host}:{port}")],
            ..Self::default()
        })
    }

    pub fn allows_topic(&self, topic: &Topic) -> bool {
        self.mqtt_topics.iter().any(|f| f.matches(topic))
    }

    /// Whether `url` (already parsed) may be called.
    pub fn allows_url(&self, url: &reqwest::Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        let with_port = format!("{host}:{port}");
        self.http_hosts
            .iter()
            .any(|g| g == "*" || g.eq_ignore_ascii_case(host) || g.eq_ignore_ascii_case(&with_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn republish_templates_grant_their_topic_with_variables_as_plus() {
        let g = Grants::for_republish("house/${h}/app").expect("grant");
        let t = |s: &str| Topic::parse(s).expect("topic");
        assert!(g.allows_topic(&t("house/a/app")));
        assert!(!g.allows_topic(&t("house/a/b/app")));
        assert!(!g.allows_topic(&t("other")));
        assert!(
            Grants::for_republish("a/#").is_ok(),
            "a filter is a grant, not a topic"
        );
    }

    #[test]
    fn forward_urls_grant_their_host_and_port() {
        let g = Grants::for_forward("http://127.0.0.1:8080/hook").expect("grant");
        let u = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(g.allows_url(&u("http://127.0.0.1:8080/other")));
        assert!(!g.allows_url(&u("http://127.0.0.1:8081/hook")));
        assert!(!g.allows_url(&u("http://localhost:8080/hook")));
        let https = Grants::for_forward("https://example.com/x").expect("grant");
        assert!(https.allows_url(&u("https://example.com:443/y")));
        assert!(Grants::for_forward("not a url").is_err());
    }
}
