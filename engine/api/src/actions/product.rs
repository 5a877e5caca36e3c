//! CreateProduct, DescribeProduct, DescribeProducts, DeleteProduct,
//! UpdateProductDynamicRegister.

use eddy_core::secret::{ExposeSecret, secret};
use eddy_core::{EncryptionType, ProductName, RegisterType};
use eddy_registry::{NewProduct, Registry};
use eddy_store::ProductRecord;
use serde_json::{Map, Value, json};

use super::{object, page};
use crate::error::ApiError;
use crate::params::Params;

/// Tencent `ProductType`s Eddy serves: 0 ordinary, 5 gateway.
const SUPPORTED_PRODUCT_TYPES: [i64; 2] = [0, 5];

fn properties(p: &ProductRecord) -> Value {
    json!({
        "ProductDescription": p.description,
        "EncryptionType": p.encryption.code(),
        "Region": p.region,
        "ProductType": p.product_type,
        "Format": p.format,
        "Platform": "0",
        "Appeui": "",
        "ModelId": "",
        "ModelName": "",
        "ProductKey": "",
        "RegisterType": p.register_type,
        "ProductSecret": p.secret.expose_secret(),
        "RegisterLimit": p.register_limit,
        "OriginProductId": "",
        "PrivateCAName": "",
        "OriginUserId": 0,
        "DeviceLimit": 0,
        "ForbiddenStatus": 0,
        "AppEUI": "",
    })
}

/// Tencent's `ProductInfo` (also the body of `DescribeProduct`).
fn info(p: &ProductRecord) -> Value {
    json!({
        "ProductId": p.id.as_str(),
        "ProductName": p.name.as_str(),
        "ProductMetadata": { "CreationDate": p.created_at, "CreateUserId": 0, "UserId": 0 },
        "ProductProperties": properties(p),
    })
}

pub(super) async fn create(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let name = ProductName::parse(&p.str("ProductName")?)?;
    // Tencent: "EncryptionType … 如不填写，默认值是1" (certificate) when absent.
    let mut new = NewProduct::new(name, EncryptionType::Certificate);
    if let Some(props) = p.opt_object("ProductProperties")? {
        if let Some(code) = props.opt_str("EncryptionType")? {
            new.encryption = EncryptionType::from_code(&code)?;
        }
        if let Some(description) = props.opt_str("ProductDescription")? {
            new.description = description;
        }
        if let Some(region) = props.opt_str("Region")? {
            new.region = region;
        }
        if let Some(product_type) = props.opt_i64("ProductType")? {
            if !SUPPORTED_PRODUCT_TYPES.contains(&product_type) {
                return Err(ApiError::new(
                    "InvalidParameterValue.ProductTypeNotSupport",
                    format!(
                        "ProductType {product_type} is not supported: Eddy serves 0 (ordinary) and 5 (gateway)."
                    ),
                ));
            }
            new.product_type = product_type;
        }
        if let Some(format) = props.opt_str("Format")? {
            new.format = format;
        }
        if let Some(code) = props.opt_i64("RegisterType")? {
            new.register_type = RegisterType::from_code(code)?;
        }
        if let Some(limit) = props.opt_i64("RegisterLimit")? {
            new.register_limit = limit;
        }
        new.secret = props.opt_str("ProductSecret")?.map(secret);
        props.ignore(&[
            "Platform",
            "Appeui",
            "AppEUI",
            "ModelId",
            "ModelName",
            "ProductKey",
            "OriginProductId",
            "PrivateCAName",
            "OriginUserId",
            "DeviceLimit",
            "ForbiddenStatus",
        ]);
        props.finish()?;
    }
    p.ignore(&["Skey"]);
    p.finish()?;
    let product = registry.create_product(new).await?;
    Ok(object(json!({
        "ProductName": product.name.as_str(),
        "ProductId": product.id.as_str(),
        "ProductProperties": properties(&product),
    })))
}

pub(super) async fn describe(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let id = p.str("ProductId")?;
    p.finish()?;
    let product = registry.product(&id).await?;
    Ok(object(info(&product)))
}

pub(super) async fn list(registry: &Registry, p: &Params) -> Result<Map<String, Value>, ApiError> {
    let page = page(p)?;
    p.finish()?;
    let products = registry.list_products(page).await?;
    Ok(object(json!({
        "TotalCount": products.total,
        "Products": products.items.iter().map(info).collect::<Vec<_>>(),
    })))
}

pub(super) async fn delete(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let id = p.str("ProductId")?;
    p.ignore(&["Skey"]);
    p.finish()?;
    registry.delete_product(&id).await?;
    Ok(Map::new())
}

pub(super) async fn update_dynamic_register(
    registry: &Registry,
    p: &Params,
) -> Result<Map<String, Value>, ApiError> {
    let id = p.str("ProductId")?;
    let register_type = RegisterType::from_code(p.i64("RegisterType")?)?;
    let limit = p.opt_i64("RegisterLimit")?;
    p.finish()?;
    let product = registry
        .update_dynamic_register(&id, register_type, limit)
        .await?;
    Ok(object(json!({
        "RegisterType": product.register_type,
        "ProductSecret": product.secret.expose_secret(),
        "RegisterLimit": product.register_limit,
    })))
}
