//! Custom topic classes (`CreateTopicPolicy`, `UpdateTopicPolicy`) and the listing of all
//! of a product's classes.

use eddy_core::time::unix_now;
use eddy_core::topic_class::custom_topic_suffix;
use eddy_core::{Privilege, TopicClass};
use eddy_store::{StoreError, TopicPolicyRecord};

use crate::{Registry, RegistryError, Result};

/// One topic class of a product as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPolicyView {
    /// `${productId}` filled in, `${deviceName}` kept as the placeholder.
    pub topic_name: String,
    pub privilege: Privilege,
    /// Tencent's default class (not editable) rather than a custom one.
    pub is_default: bool,
}

impl Registry {
    pub async fn create_topic_policy(
        &self,
        product_id: &str,
        topic_name: &str,
        privilege: i64,
    ) -> Result<()> {
        let product = self.product(product_id).await?;
        let privilege = Privilege::from_code(privilege)?;
        let suffix = custom_topic_suffix(&product.id, topic_name)?;
        let now = unix_now();
        let record = TopicPolicyRecord {
            product_id: product.id.clone(),
            suffix: suffix.clone(),
            privilege: privilege.code(),
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_topic_policy(&record).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict { .. }) => Err(RegistryError::TopicPolicyExists {
                product: product.id.to_string(),
                topic: suffix,
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Renames a custom class and/or changes its privilege.
    pub async fn update_topic_policy(
        &self,
        product_id: &str,
        topic_name: &str,
        new_topic_name: Option<&str>,
        privilege: i64,
    ) -> Result<()> {
        let product = self.product(product_id).await?;
        let privilege = Privilege::from_code(privilege)?;
        let old = custom_topic_suffix(&product.id, topic_name)?;
        let new = match new_topic_name {
            Some(name) => custom_topic_suffix(&product.id, name).map_err(|mut e| {
                e.field = "NewTopicName";
                e
            })?,
            None => old.clone(),
        };
        match self
            .store
            .update_topic_policy(&product.id, &old, &new, privilege.code())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(RegistryError::TopicPolicyNotFound {
                product: product.id.to_string(),
                topic: old,
            }),
            Err(StoreError::Conflict { .. }) => Err(RegistryError::TopicPolicyExists {
                product: product.id.to_string(),
                topic: new,
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Every class of the product: Tencent's defaults first, then the custom ones.
    pub async fn topic_policies(&self, product_id: &str) -> Result<Vec<TopicPolicyView>> {
        let product = self.product(product_id).await?;
        let pid = product.id.as_str();
        let mut out: Vec<TopicPolicyView> = TopicClass::defaults()
            .into_iter()
            .map(|class| TopicPolicyView {
                topic_name: class.template.replace("${productId}", pid),
                privilege: class.privilege,
                is_default: true,
            })
            .collect();
        for record in self.store.list_topic_policies(&product.id).await? {
            let privilege = Privilege::from_code(record.privilege)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push(TopicPolicyView {
                topic_name: format!("{pid}/${{deviceName}}/{}", record.suffix),
                privilege,
                is_default: false,
            });
        }
        Ok(out)
    }
}
