"""The ECR image pull secret's findings (SB62xx): ecr.secret and ecr.expiry."""

from __future__ import annotations

from sbops.messages import define
from sbops.model import Reason, Status

SECRET, EXPIRY = "runbooks/ecr.secret.md", "runbooks/ecr.expiry.md"

# ecr.secret (ecr.expiry reports SECRET_MISSING too)
SECRET_VALID = define("SB6210", "PullSecretValid", Status.OK,
                      "secret {where} holds credentials for {registry}; {workloads} workload(s) use it", SECRET,
                      Reason.NONE)
SECRET_MISSING = define("SB6211", "PullSecretMissing", Status.FAIL, "image pull secret {where} does not exist", SECRET,
                        Reason.MISSING)
SECRET_WRONG_TYPE = define("SB6212", "PullSecretWrongType", Status.FAIL,
                           "secret {where} has type {type}, not {expected}", SECRET, Reason.MISCONFIGURED)
SECRET_UNREADABLE = define("SB6213", "PullSecretUnreadable", Status.FAIL,
                           "secret {where} has no readable .dockerconfigjson with auths", SECRET, Reason.MISCONFIGURED)
SECRET_LACKS_REGISTRY = define("SB6214", "PullSecretLacksRegistry", Status.FAIL,
                               "secret {where} has no credentials for {registry}", SECRET, Reason.MISCONFIGURED)
WORKLOADS_WITHOUT_SECRET = define("SB6215", "WorkloadsLackPullSecret", Status.FAIL,
                                  "{count} workload(s) do not list {secret} in imagePullSecrets: {workloads}", SECRET,
                                  Reason.MISCONFIGURED)

# ecr.expiry
TOKEN_VALID = define("SB6220", "EcrTokenValid", Status.OK, "the ECR token in {where} is valid for {left}", EXPIRY,
                     Reason.NONE)
TOKEN_EXPIRY_UNKNOWN = define("SB6221", "EcrTokenExpiryUnknown", Status.WARN,
                              "cannot tell when the token in {where} expires (not an ECR token, no {annotation} "
                              "annotation)", EXPIRY, Reason.MISCONFIGURED)
TOKEN_EXPIRED = define("SB6222", "EcrTokenExpired", Status.FAIL,
                       "the ECR token in {where} expired {ago} ago; new pods fail with ImagePullBackOff", EXPIRY,
                       Reason.EXPIRED)
TOKEN_EXPIRING = define("SB6223", "EcrTokenExpiring", Status.WARN, "the ECR token in {where} expires in {left}", EXPIRY,
                        Reason.EXPIRING)
