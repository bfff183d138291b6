//! `portal.v1.Commission`: facilities and their resource models.

use tonic::Request;
use trellis_api::portal::v1 as pb;
use trellis_api::portal::v1::commission_server::Commission;
use trellis_realize::FacilityRecord;
use trellis_types::Error;

use super::{Reply, Services, ok};
use crate::authz::caller;
use crate::convert::realize::facility_to;
use crate::status::status;

/// The Commission service.
pub struct CommissionApi(pub Services);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Commission for CommissionApi {
    async fn register_facility(
        &self,
        request: Request<pb::RegisterFacilityRequest>,
    ) -> Reply<pb::RegisterFacilityResponse> {
        let service = self.0.realize().map_err(status)?;
        let by = caller(&request).map_err(status)?.username().to_owned();
        let r = request.into_inner();
        let facility =
            r.facility.ok_or_else(|| status(Error::invalid("facility", "the facility is missing")))?;
        let model = r.model.ok_or_else(|| {
            status(Error::invalid("model", "a facility is commissioned with its XIR resource model"))
        })?;
        let record = FacilityRecord {
            name: facility.name,
            address: facility.address,
            description: facility.description,
            creator: by.clone(),
            certificate: facility.certificate,
            ca_certificate: facility.cacertificate,
            deactivated: vec![],
            ver: 0,
            created: now(),
        };
        let name = record.name.clone();
        let resources = model.resources.len();
        service.register_facility(record, model).await.map_err(status)?;
        tracing::info!(facility = %name, resources, by = %by, "facility registered");
        ok(pb::RegisterFacilityResponse { code: 0, message: format!("facility {name} registered") })
    }

    async fn get_facilities(
        &self,
        _request: Request<pb::GetFacilitiesRequest>,
    ) -> Reply<pb::GetFacilitiesResponse> {
        let service = self.0.realize().map_err(status)?;
        let facilities = service.facilities().await.map_err(status)?;
        ok(pb::GetFacilitiesResponse { facilities: facilities.iter().map(facility_to).collect() })
    }

    async fn get_facility(&self, request: Request<pb::GetFacilityRequest>) -> Reply<pb::GetFacilityResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        let (record, model) = service.facility(&r.name).await.map_err(status)?;
        ok(pb::GetFacilityResponse {
            facility: Some(facility_to(&record)),
            model: if r.with_model { model } else { None },
            images: vec![],
        })
    }

    async fn update_facility(
        &self,
        request: Request<pb::UpdateFacilityRequest>,
    ) -> Reply<pb::UpdateFacilityResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        if r.members.is_some() || r.access_mode.is_some() {
            return Err(status(Error::invalid(
                "members",
                "facilities are portal-wide: they have no members or access mode to change",
            )));
        }
        let address = (!r.address.is_empty()).then_some(r.address);
        let description = r.description.map(|d| d.value);
        service.update_facility(&r.name, address, description, r.model).await.map_err(status)?;
        ok(pb::UpdateFacilityResponse {})
    }

    async fn delete_facility(
        &self,
        request: Request<pb::DeleteFacilityRequest>,
    ) -> Reply<pb::DeleteFacilityResponse> {
        let service = self.0.realize().map_err(status)?;
        service.delete_facility(&request.get_ref().name).await.map_err(status)?;
        ok(pb::DeleteFacilityResponse {})
    }

    async fn deactivate_resources(
        &self,
        request: Request<pb::DeactivateResourcesRequest>,
    ) -> Reply<pb::DeactivateResourcesResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        service.set_resources_active(&r.facility, &r.resources, false).await.map_err(status)?;
        ok(pb::DeactivateResourcesResponse {})
    }

    async fn activate_resources(
        &self,
        request: Request<pb::ActivateResourcesRequest>,
    ) -> Reply<pb::ActivateResourcesResponse> {
        let service = self.0.realize().map_err(status)?;
        let r = request.into_inner();
        service.set_resources_active(&r.facility, &r.resources, true).await.map_err(status)?;
        ok(pb::ActivateResourcesResponse {})
    }
}
