//! Choosing the device (and so the backend) at run time from a string such as `cpu`, `cuda:0`
//! or `vulkan:0`.
//!
//! Which backends exist is decided at compile time by this crate's cargo features (`flex`,
//! `ndarray`, `cuda`, `vulkan`), which forward to Burn's. Without any of them the library still
//! compiles; [`parse_device`] then explains which feature is missing.

use burn::tensor::Device;

use crate::{ModelError, Result};

/// The device strings [`parse_device`] accepts, for help texts.
pub const DEVICE_HELP: &str = "cpu (flex, else ndarray), flex, ndarray, cuda[:N], vulkan[:N]";

/// Whether `device` is Burn's flex CPU device (ft's host-side fast paths take it).
pub use ft_hub::ops::is_flex;

/// Parses a device string: `cpu`, `flex`, `ndarray`, `cuda`, `cuda:N`, `vulkan`, `vulkan:N`.
///
/// `cpu` is Burn's pure-Rust `flex` backend when compiled in, else `ndarray`. `vulkan:N` is the
/// N-th discrete GPU through wgpu's Vulkan backend; plain `vulkan` lets wgpu pick the best one.
pub fn parse_device(spec: &str) -> Result<Device> {
    let err = |message: String| ModelError::Device { spec: spec.to_string(), message };
    let (kind, index) = match spec.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index.parse().map_err(|_| err(format!("'{index}' is not a device index")))?;
            (kind, Some(index))
        }
        None => (spec, None),
    };
    let missing =
        |feature: &str| err(format!("this build of ft has no {feature} backend; rebuild with `--features {feature}`"));
    match (kind.to_ascii_lowercase().as_str(), index) {
        ("cpu", None) => cpu_device().ok_or_else(|| missing("flex")),
        ("flex", None) => flex_device().ok_or_else(|| missing("flex")),
        ("ndarray", None) => ndarray_device().ok_or_else(|| missing("ndarray")),
        ("cuda", index) => cuda_device(index.unwrap_or(0)).ok_or_else(|| missing("cuda"))?.map_err(err),
        ("vulkan", index) => vulkan_device(index).ok_or_else(|| missing("vulkan"))?.map_err(err),
        ("cpu" | "flex" | "ndarray", Some(_)) => Err(err("CPU devices take no index".into())),
        _ => Err(err(format!("unknown device (expected {DEVICE_HELP})"))),
    }
}

fn cpu_device() -> Option<Device> {
    flex_device().or_else(ndarray_device)
}

#[cfg(feature = "flex")]
fn flex_device() -> Option<Device> {
    Some(Device::flex())
}
#[cfg(not(feature = "flex"))]
fn flex_device() -> Option<Device> {
    None
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // deprecated by Burn in favour of flex; kept for comparison benchmarks
fn ndarray_device() -> Option<Device> {
    Some(Device::ndarray())
}
#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Option<Device> {
    None
}

/// A CUDA device, checked to exist first: Burn panics on first use of a missing GPU.
#[cfg(feature = "cuda")]
fn cuda_device(index: usize) -> Option<std::result::Result<Device, String>> {
    use burn::tensor::DeviceType;
    let found = Device::enumerate(DeviceType::Cuda).into_vec().len();
    Some(if index < found {
        Ok(Device::cuda(index))
    } else {
        Err(format!("no such CUDA device: {found} found (is the NVIDIA driver installed?)"))
    })
}
#[cfg(not(feature = "cuda"))]
fn cuda_device(_index: usize) -> Option<std::result::Result<Device, String>> {
    None
}

/// A Vulkan device through wgpu, initialised here so that a missing GPU or driver is an error
/// rather than a panic on first use.
#[cfg(feature = "vulkan")]
fn vulkan_device(index: Option<usize>) -> Option<std::result::Result<Device, String>> {
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::WgpuBackend;
    let kind = match index {
        Some(i) => DeviceKind::DiscreteGpu(i),
        None => DeviceKind::DefaultDevice,
    };
    Some(
        Device::wgpu_options()
            .device_kind(kind)
            .graphics_api(WgpuBackend::Vulkan)
            .init()
            .map_err(|e| format!("no usable Vulkan GPU ({e}); is a Vulkan driver (ICD) installed?")),
    )
}
#[cfg(not(feature = "vulkan"))]
fn vulkan_device(_index: Option<usize>) -> Option<std::result::Result<Device, String>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        for bad in ["gpu", "cuda:x", "cpu:1", "tpu:0"] {
            assert!(parse_device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_backend_names_the_feature() {
        #[cfg(not(feature = "cuda"))]
        {
            let msg = parse_device("cuda:0").unwrap_err().to_string();
            assert!(msg.contains("--features cuda"), "{msg}");
        }
    }
}
