//! MQTT 5 properties: PUBLISH properties forwarded to subscribers (with the remaining
//! message expiry and the subscription identifiers), and inbound topic aliases.

use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use bytestring::ByteString;
use eddy_core::{Message, MessageProperties};
use rmqtt_codec::v5;

/// Topic aliases a client may use (MQTT 5 Topic Alias Maximum in the CONNACK).
pub(super) const TOPIC_ALIAS_MAX: u16 = 64;

/// A PUBLISH's properties as the broker keeps them; `None` when it carries none worth
/// keeping.
pub(super) fn message_properties(
    p: &v5::PublishProperties,
    now_ms: i64,
) -> Option<Arc<MessageProperties>> {
    let expires_at_ms = p
        .message_expiry_interval
        .map(|secs| now_ms.saturating_add(i64::from(secs.get()) * 1000));
    let properties = MessageProperties {
        content_type: p.content_type.as_ref().map(ToString::to_string),
        response_topic: p.response_topic.as_ref().map(ToString::to_string),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        payload_is_utf8: p.is_utf8_payload,
        expires_at_ms,
    };
    (properties != MessageProperties::default()).then(|| Arc::new(properties))
}

/// The properties of an outgoing PUBLISH: what the publisher sent, the expiry interval
/// left (rounded up, so it never reaches zero early), and the subscription identifiers.
pub(super) fn publish_properties(
    message: &Message,
    subscription_ids: &[NonZeroU32],
    now_ms: i64,
) -> v5::PublishProperties {
    let mut out = v5::PublishProperties {
        subscription_ids: subscription_ids.to_vec(),
        ..Default::default()
    };
    if let Some(p) = message.properties.as_deref() {
        out.content_type = p.content_type.as_deref().map(ByteString::from);
        out.response_topic = p.response_topic.as_deref().map(ByteString::from);
        out.correlation_data = p.correlation_data.clone();
        out.user_properties = p
            .user_properties
            .iter()
            .map(|(k, v)| (ByteString::from(k.as_str()), ByteString::from(v.as_str())))
            .collect();
        out.is_utf8_payload = p.payload_is_utf8;
        out.message_expiry_interval = p.expires_at_ms.and_then(|at| {
            let left_ms = at.saturating_sub(now_ms).max(1);
            let secs = (left_ms + 999) / 1000;
            NonZeroU32::new(u32::try_from(secs).unwrap_or(u32::MAX))
        });
    }
    out
}

/// The topic aliases one connection has set.
#[derive(Debug, Default)]
pub(super) struct TopicAliases(HashMap<u16, ByteString>);

impl TopicAliases {
    /// The PUBLISH's topic: `topic` itself, which `alias` (if any) now stands for, or
    /// what `alias` stood for when `topic` is empty.
    pub(super) fn resolve(
        &mut self,
        topic: ByteString,
        alias: Option<NonZeroU16>,
    ) -> Result<ByteString, v5::DisconnectReasonCode> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if alias.get() > TOPIC_ALIAS_MAX {
            return Err(v5::DisconnectReasonCode::TopicAliasInvalid);
        }
        if topic.is_empty() {
            self.0
                .get(&alias.get())
                .cloned()
                .ok_or(v5::DisconnectReasonCode::ProtocolError)
        } else {
            self.0.insert(alias.get(), topic.clone());
            Ok(topic)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_set_used_and_bounded() {
        let mut aliases = TopicAliases::default();
        let one = NonZeroU16::new(1);
        assert_eq!(aliases.resolve("a/b".into(), one), Ok("a/b".into()));
        assert_eq!(aliases.resolve("".into(), one), Ok("a/b".into()));
        assert_eq!(
            aliases.resolve("".into(), NonZeroU16::new(2)),
            Err(v5::DisconnectReasonCode::ProtocolError)
        );
        assert_eq!(
            aliases.resolve("x".into(), NonZeroU16::new(TOPIC_ALIAS_MAX + 1)),
            Err(v5::DisconnectReasonCode::TopicAliasInvalid)
        );
        assert_eq!(aliases.resolve("plain".into(), None), Ok("plain".into()));
    }

    #[test]
    fn expiry_is_forwarded_as_the_time_left() {
        let p = v5::PublishProperties {
            message_expiry_interval: NonZeroU32::new(10),
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        let props = message_properties(&p, 1_000).expect("kept");
        assert_eq!(props.expires_at_ms, Some(11_000));
        let message = Message {
            topic: eddy_core::Topic::parse("t").expect("topic"),
            payload: bytes::Bytes::new(),
            qos: eddy_core::QoS::AtMostOnce,
            retain: false,
            publisher: "p".into(),
            received_at_ms: 1_000,
            properties: Some(props),
        };
        let out = publish_properties(&message, &[], 4_500);
        assert_eq!(out.message_expiry_interval, NonZeroU32::new(7));
        assert_eq!(out.content_type.as_deref(), Some("text/plain"));
        assert!(message.expired(11_000));
        assert!(message_properties(&v5::PublishProperties::default(), 0).is_none());
    }
}
