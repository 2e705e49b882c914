"""The local cloud: the whole platform on 127.0.0.1, with no AWS account and no Docker.

``python -m localcloud serve`` runs moto's server with the patches ``localcloud.patches`` applies
(one module per service in ``localcloud/services/``), the Lambda runner and the REST gateway;
``up`` / ``down`` / ``status`` start it in the background, deploy the stack with ``cdktf deploy``
and stop it again. See docs/LOCALCLOUD.md.
"""
