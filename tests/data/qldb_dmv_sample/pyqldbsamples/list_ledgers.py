# Copyright 2019 Amazon.com, Inc. or its affiliates. All Rights Reserved.
# SPDX-License-Identifier: MIT-0
#
# Permission is hereby granted, free of charge, to any person obtaining a copy of this
# software and associated documentation files (the "Software"), to deal in the Software
# without restriction, including without limitation the rights to use, copy, modify,
# merge, publish, distribute, sublicense, and/or sell copies of the Software, and to
# permit persons to whom the Software is furnished to do so.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
# INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
# PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
# HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION
# OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
# SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
#
# This code expects that you have AWS credentials setup per:
# https://boto3.amazonaws.com/v1/documentation/api/latest/guide/quickstart.html
from logging import basicConfig, getLogger, INFO

from boto3 import client

logger = getLogger(__name__)
basicConfig(level=INFO)
qldb_client = client('qldb')


def list_ledgers():
    """
    List all ledgers.

    :rtype: list
    :return: List of ledgers.
    """
    logger.info("Let's list all the ledgers...")
    result = qldb_client.list_ledgers()
    ledgers = result.get('Ledgers')
    logger.info('Success. List of ledgers: {}.'.format(ledgers))
    return ledgers


def main():
    """
    List all QLDB ledgers in a given account.
    """
    try:
        list_ledgers()
    except Exception as e:
        logger.exception('Unable to list ledgers!')
        raise e


if __name__ == '__main__':
    main()
