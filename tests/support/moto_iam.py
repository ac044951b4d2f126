"""S3 and IAM calls with boto3 for the IAM test of tests/it/object_lock.rs
(moto started with INITIAL_NO_AUTH_ACTION_COUNT: after the first requests,
moto checks every request's signature and the caller's IAM policies).

python3 moto_iam.py OP ARGS...; credentials, endpoint and region from the
environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...); one JSON line out.

  setup BUCKET POLICY  the bucket (Object Lock) and IAM users `admin` (every
                       action) and `host` (only POLICY, a JSON document),
                       with access keys: SETUP_REQUESTS requests, every one
                       inside the no-auth window; then a request with
                       unknown keys must be refused (the window is closed)
  put BUCKET KEY       PutObject, unlocked: {"version": ID}
  delete BUCKET KEY [VERSION]
                       DeleteObject (of VERSION): {"status": HTTP, "code": ..}
  versions BUCKET PREFIX
                       every version: [[key, version id, is latest], ...]
  retention BUCKET KEY {"mode": M, "until": unix seconds}, from a HEAD
  shorten BUCKET KEY SECONDS
                       governance retention now + SECONDS, with the bypass
  deny USER NAME POLICY
                       put the inline policy NAME (a JSON document) on USER
  server ARGS...       moto's server (`python3 -m moto.server ARGS...`), with
                       the signature check of moto 5.2.1 mended: it signs
                       the query as werkzeug decoded it (`prefix=bridge/`)
                       where every client signs it encoded (`bridge%2F`), so
                       every LIST under a prefix failed SignatureDoesNotMatch;
                       with MOTO_IAM_LOG set, each request that passed IAM is
                       appended to that file: {"key", "action", "path"}
"""

import json
import os
import sys
import time
from datetime import datetime, timezone

import boto3
from botocore.exceptions import ClientError

# the requests `setup` makes before the window must be closed
SETUP_REQUESTS = 7


def client(service, key=None):
    region = os.environ.get("AWS_REGION", "us-east-1")
    if key is None:
        return boto3.client(service, region_name=region)
    return boto3.client(
        service,
        region_name=region,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
    )


def error(e):
    return {
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "code": e.response["Error"]["Code"],
    }


def setup(bucket, policy):
    s3, iam = client("s3"), client("iam")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    everything = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
    )
    keys = {}
    for user, doc in [("admin", everything), ("host", policy)]:
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName=user, PolicyDocument=doc)
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = [k["AccessKeyId"], k["SecretAccessKey"]]
    # the window is closed: unknown keys are refused
    try:
        client("s3", ("AKIAUNKNOWNUNKNOWN00", "unknown")).list_objects_v2(
            Bucket=bucket
        )
    except ClientError as e:
        keys["unknown"] = error(e)
        return keys
    raise SystemExit("moto answered unknown keys: IAM is not enforced")


def main(op, *args):
    s3 = client("s3")
    if op == "setup":
        return setup(args[0], args[1])
    if op == "put":
        r = s3.put_object(Bucket=args[0], Key=args[1], Body=b"probe")
        return {"version": r["VersionId"]}
    if op == "delete":
        kw = {"Bucket": args[0], "Key": args[1]}
        if len(args) > 2:
            kw["VersionId"] = args[2]
        try:
            r = s3.delete_object(**kw)
            return {"status": r["ResponseMetadata"]["HTTPStatusCode"], "code": ""}
        except ClientError as e:
            return error(e)
    if op == "versions":
        r = s3.list_object_versions(Bucket=args[0], Prefix=args[1])
        return [[v["Key"], v["VersionId"], v["IsLatest"]] for v in r.get("Versions", [])]
    if op == "retention":
        # a HEAD (moto 5.2.1 fails GetObjectRetention with IAM enforced)
        r = s3.head_object(Bucket=args[0], Key=args[1])
        return {
            "mode": r["ObjectLockMode"],
            "until": int(r["ObjectLockRetainUntilDate"].timestamp()),
        }
    if op == "shorten":
        until = datetime.fromtimestamp(time.time() + int(args[2]), timezone.utc)
        s3.put_object_retention(
            Bucket=args[0],
            Key=args[1],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
            BypassGovernanceRetention=True,
        )
        return {}
    if op == "deny":
        client("iam").put_user_policy(
            UserName=args[0], PolicyName=args[1], PolicyDocument=args[2]
        )
        return {}
    raise SystemExit(f"unknown operation {op}")


def server(argv):
    from urllib.parse import parse_qs, quote, unquote

    from moto.iam import access_control
    from moto.server import main as moto_server

    create = access_control.IAMRequestBase._create_aws_request

    def encoded(self):
        path, sep, query = self._path.partition("?")
        if sep:
            pairs = []
            for pair in query.split("&"):
                k, eq, v = pair.partition("=")
                pairs.append(
                    quote(unquote(k), safe="-_.~") + eq + quote(unquote(v), safe="-_.~")
                )
            self._path = path + "?" + "&".join(pairs)
        return create(self)

    access_control.IAMRequestBase._create_aws_request = encoded

    # moto 5.2.1 reads every request's Authorization header (a KeyError,
    # HTTP 500, for a presigned URL: strata's locked PUTs are signed by
    # object_store's presigner) and cannot check a query signature: a
    # presigned request is authorized by the key of its X-Amz-Credential,
    # its signature unchecked
    init = access_control.IAMRequestBase.__init__
    check = access_control.IAMRequestBase.check_signature

    def init_presigned(self, account_id, method, path, data, body, headers, action):
        self._presigned = False
        if "Authorization" not in headers:
            query = parse_qs(path.partition("?")[2])
            cred = query.get("X-Amz-Credential", [None])[0]
            if cred:
                self._presigned = True
                headers = dict(headers)
                headers["Authorization"] = (
                    f"AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, "
                    "Signature=presigned"
                )
        init(self, account_id, method, path, data, body, headers, action)

    def check_unless_presigned(self):
        if not self._presigned:
            check(self)

    access_control.IAMRequestBase.__init__ = init_presigned
    access_control.IAMRequestBase.check_signature = check_unless_presigned

    # every authorized request, for the test to check what moto does not
    # evaluate (a policy's Condition on s3:prefix): a JSON line each,
    # {"key": access key id, "action": "s3:ListBucket", "path": ...}
    log = os.environ.get("MOTO_IAM_LOG")
    permitted = access_control.IAMRequestBase.check_action_permitted

    def logged(self, resource):
        permitted(self, resource)
        if log:
            auth = self._headers["Authorization"]
            key = self._get_string_between("Credential=", "/", auth)
            line = {"key": key, "action": self._action, "path": self._path}
            with open(log, "a") as f:
                f.write(json.dumps(line) + "\n")

    access_control.IAMRequestBase.check_action_permitted = logged
    moto_server(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        server(sys.argv[2:])
        sys.exit(0)
    print(json.dumps(main(*sys.argv[1:])))
