#!/usr/bin/env bash
# GCE: a custom role with exactly what cloudvip needs, granted to the cluster's service
# account. `--public` adds what public_ip needs. Run once, with gcloud as a project owner.
# `cloudvip diagnose` on a node names any permission still missing.
set -euo pipefail

PROJECT=${PROJECT:-my-project}
SA=${SA:-cloudvip@my-project.iam.gserviceaccount.com}

PERMS=compute.instances.get,compute.instances.list,compute.instances.updateNetworkInterface,compute.zoneOperations.get,compute.zoneOperations.list,compute.subnetworks.get,compute.subnetworks.use
if [ "${1:-}" = --public ]; then
    PERMS=$PERMS,compute.addresses.get,compute.addresses.list,compute.addresses.use,compute.instances.addAccessConfig,compute.instances.deleteAccessConfig,compute.subnetworks.useExternalIp,compute.networks.useExternalIp
fi

gcloud iam roles create cloudvip --project "$PROJECT" \
    --title "cloudvip" --description "Move a VIP between instances (cloudvip)" \
    --permissions "$PERMS"
gcloud projects add-iam-policy-binding "$PROJECT" \
    --member "serviceAccount:$SA" --role "projects/$PROJECT/roles/cloudvip"
# The instances also need the cloud-platform (or compute) access scope:
#   gcloud compute instances set-service-account NAME --zone ZONE \
#       --service-account "$SA" --scopes cloud-platform
